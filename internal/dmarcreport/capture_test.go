package dmarcreport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"vouch/internal/testutil"
)

func TestCaptureWanted(t *testing.T) {
	c := NewCapture(NewMemoryStore(), slog.New(slog.DiscardHandler), CaptureOptions{Mailboxes: []string{"DMARC@Example.com", "rua@reports.example.org."}})
	defer c.Close()
	for rcpt, want := range map[string]bool{
		"dmarc@example.com":          true,
		"<dmarc@EXAMPLE.COM>":        true,
		"Dmarc+google@example.com":   true,
		"rua@reports.example.org":    true,
		"dmarc@example.org":          false,
		"dmarcx@example.com":         false,
		"other+dmarc@example.com":    false,
		"dmarc@example.com.evil.net": false,
		"":                           false,
	} {
		if got := c.Wanted(rcpt); got != want {
			t.Errorf("Wanted(%q) = %v, want %v", rcpt, got, want)
		}
	}
}

// captureMessage feeds a message the way the milter does: header fields
// as Postfix hands them over (bare LF inside folded values), then body
// chunks.
func captureMessage(c *Capture, body ...string) *Captured {
	m := c.Begin()
	m.Header("From", " noreply-dmarc-support@google.com")
	m.Header("Subject", " Report domain:\n example.com")
	m.EndHeaders()
	for _, b := range body {
		m.Body([]byte(b))
	}
	return m
}

func wait(t *testing.T, ch <-chan int) int {
	t.Helper()
	if ch == nil {
		t.Fatal("not submitted")
	}
	select {
	case n := <-ch:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no result from the worker")
	}
	return 0
}

// TestCaptureReads: the worker gets the message as received (CRLF), and
// keeps each report with the sender's data; a parse error is kept as
// malformed; a panic in the parser is logged and the worker goes on.
func TestCaptureReads(t *testing.T) {
	st := NewMemoryStore()
	var logs testutil.LogBuffer
	var got []string
	parse := func(r io.Reader, lim Limits) ([]Feedback, error) {
		b, _ := io.ReadAll(r)
		got = append(got, string(b))
		switch {
		case strings.Contains(string(b), "PANIC"):
			panic("parser bug")
		case strings.Contains(string(b), "BROKEN"):
			return nil, errors.New("gzip: invalid header")
		case strings.Contains(string(b), "EMPTY"):
			return nil, nil
		}
		fb := Feedback{Metadata: ReportMetadata{OrgName: "google.com", ReportID: "r1"}, Policy: PolicyPublished{Domain: "example.com"}}
		if strings.Contains(string(b), "PARTIAL") {
			fb.Metadata.ReportID = "partial"
			return []Feedback{fb}, errors.New("attachment 2: zip with more than 8 files")
		}
		fb2 := fb
		fb2.Metadata.ReportID = "r2"
		return []Feedback{fb, fb2}, nil
	}
	c := newCapture(st, slog.New(slog.NewTextHandler(&logs, nil)), CaptureOptions{Limits: Limits{MaxMessage: 1 << 20}}, parse)
	defer c.Close()
	from := Origin{MailFrom: "bounce@google.com", HeaderFrom: "noreply-dmarc-support@google.com", Authenticated: true}

	if n := wait(t, captureMessage(c, "body line\r\n", "second\n").Submit(from, "Q1")); n != 2 {
		t.Errorf("read %d reports, want 2", n)
	}
	want := "From: noreply-dmarc-support@google.com\r\nSubject: Report domain:\r\n example.com\r\n\r\nbody line\r\nsecond\r\n"
	if len(got) != 1 || got[0] != want {
		t.Errorf("parser got %q\nwant %q", got, want)
	}
	recs, err := st.ListReceived(context.Background(), "", time.Time{})
	if err != nil || len(recs) != 2 {
		t.Fatalf("received %d, %v", len(recs), err)
	}
	if r := recs[0]; r.MailFrom != from.MailFrom || r.HeaderFrom != from.HeaderFrom || !r.Authenticated || r.ID != ReceivedID(&r.Feedback) {
		t.Errorf("received %+v", r)
	}
	for body, want := range map[string]int{"BROKEN": 0, "EMPTY": 0, "PANIC": 0, "PARTIAL": 1} {
		if n := wait(t, captureMessage(c, body).Submit(from, "Q2")); n != want {
			t.Errorf("%s: read %d, want %d", body, n, want)
		}
	}
	if recs, _ := st.ListReceived(context.Background(), "", time.Time{}); len(recs) != 3 || !slices.ContainsFunc(recs, func(r Received) bool { return r.Feedback.Metadata.ReportID == "partial" }) {
		t.Errorf("the good report beside a bad attachment is not kept: %+v", recs)
	}
	mal, _ := st.ListMalformed(context.Background(), time.Time{})
	slices.SortFunc(mal, func(a, b Malformed) int { return strings.Compare(a.Reason, b.Reason) })
	if len(mal) != 3 || mal[1].Reason != "gzip: invalid header" || mal[0].Reason != "attachment 2: zip with more than 8 files" || mal[1].MailFrom != from.MailFrom || !strings.Contains(string(mal[1].Raw), "BROKEN") {
		t.Errorf("malformed %+v", mal)
	}
	for _, line := range []string{"reason=\"gzip: invalid header\"", "no aggregate report", "panic=\"parser bug\""} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %s:\n%s", line, logs.String())
		}
	}
	// The worker survived the panic.
	if n := wait(t, captureMessage(c, "ok").Submit(from, "Q3")); n != 2 {
		t.Errorf("after the panic: read %d", n)
	}
	if h := c.Held(); h != 0 {
		t.Errorf("%d bytes still held", h)
	}
}

// TestCaptureLimits: a message over max_message_size, copies beyond the
// budget and a full queue are delivered unread (Submit returns nil) with
// a log line, and give their memory back.
func TestCaptureLimits(t *testing.T) {
	release := make(chan struct{})
	parse := func(r io.Reader, lim Limits) ([]Feedback, error) {
		<-release
		return nil, errors.New("x")
	}
	var logs testutil.LogBuffer
	c := newCapture(NewMemoryStore(), slog.New(slog.NewTextHandler(&logs, nil)),
		CaptureOptions{Limits: Limits{MaxMessage: 1000}, Budget: 1500, Queue: 1}, parse)
	defer func() { close(release); c.Close() }()
	from := Origin{MailFrom: "a@b.example"}

	big := captureMessage(c, strings.Repeat("x", 1001))
	if big.Submit(from, "BIG") != nil {
		t.Error("a message over max_message_size was submitted")
	}
	// Two copies of 800 bytes: the second does not fit in 1500.
	a := captureMessage(c, strings.Repeat("a", 700))
	b := captureMessage(c, strings.Repeat("b", 700))
	if b.Submit(from, "B") != nil {
		t.Error("a copy over the budget was submitted")
	}
	if h := c.Held(); h <= 0 || h > 1500 {
		t.Errorf("held %d", h)
	}
	// a goes to the worker (which blocks in parse), the next one waits in
	// the queue, the third finds it full.
	if a.Submit(from, "A") == nil {
		t.Fatal("a was not submitted")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(c.queue.ch) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if captureMessage(c, "q1").Submit(from, "Q1") == nil {
		t.Error("queued message not submitted")
	}
	if captureMessage(c, "q2").Submit(from, "Q2") != nil {
		t.Error("submitted to a full queue")
	}
	for _, s := range []string{"qid=BIG", "larger than max_message_size", "qid=B ", "more than 1500 bytes", "qid=Q2", "queue full"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
	aborted := captureMessage(c, "abc")
	aborted.Release()
	// Held: a (in the worker) and q1 (queued) only.
	if h, want := c.Held(), int64(len(captureRaw("a", 700))+len(captureRaw("q", 2))); h != want {
		t.Errorf("held %d, want %d", h, want)
	}
}

func captureRaw(b string, n int) string {
	return "From: noreply-dmarc-support@google.com\r\nSubject: Report domain:\r\n example.com\r\n\r\n" + strings.Repeat(b, n)
}

// FuzzRUAMailboxKey: the key a recipient is matched by is stable (a key
// is its own key), ignores case, and a +detail never changes the key of
// a mailbox without one.
func FuzzRUAMailboxKey(f *testing.F) {
	for _, s := range []string{"dmarc@example.com", "<DMARC+google@Example.COM>", "a+b+c@x.", "+x@y", "no-at", "@", "a@b@c", " <x@y> "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		k := mailboxKey(addr)
		if mailboxKey(k) != k {
			t.Fatalf("key of %q is %q, whose key is %q", addr, k, mailboxKey(k))
		}
		if isASCII(addr) && mailboxKey(strings.ToUpper(addr)) != mailboxKey(strings.ToLower(addr)) {
			t.Fatalf("case changes the key of %q", addr)
		}
		local, domain, ok := strings.Cut(k, "@")
		if ok && !strings.Contains(local, "+") && !strings.Contains(domain, "@") && local != "" {
			if d := mailboxKey(local + "+detail@" + domain); d != k {
				t.Fatalf("%q+detail has key %q, want %q", k, d, k)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
