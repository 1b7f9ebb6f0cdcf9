package dmarcreport

import (
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vouch/internal/dnstest"
	"vouch/internal/testutil"
)

var (
	sendNow   = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	testRep   = Reporter{OrgName: "vouch test", Email: "dmarc-reports@vouch.test"}
	sendEvDay = time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC)
)

// evaluation is one message from ip about domain, recorded at t.
func evaluation(domain, ip string, t time.Time, rua ...string) Evaluation {
	return Evaluation{
		Time:   t,
		Policy: PolicyPublished{Domain: domain, P: "none"},
		RUA:    rua,
		Record: Record{
			Row:         Row{SourceIP: ip, Count: 1, PolicyEvaluated: PolicyEvaluated{Disposition: "none", DKIM: "fail", SPF: "pass"}},
			Identifiers: Identifiers{HeaderFrom: domain},
			AuthResults: AuthResults{SPF: []SPFAuthResult{{Domain: domain, Scope: "mfrom", Result: "pass"}}},
		},
	}
}

type sendFixture struct {
	store *MemoryStore
	dns   *dnstest.Server
	smtp  *testutil.SMTPServer
	logs  *testutil.LogBuffer
	s     *Sender
}

func newSendFixture(t *testing.T, opts SenderOptions, evs ...Evaluation) *sendFixture {
	t.Helper()
	f := &sendFixture{store: NewMemoryStore(), logs: &testutil.LogBuffer{}, smtp: testutil.NewSMTPServer(t),
		dns: dnstest.New(t, `example.com._report._dmarc.reports.test. 300 IN TXT "v=DMARC1"`)}
	if err := f.store.Add(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	opts.Reporter, opts.SMTP, opts.HELO = testRep, f.smtp.Addr, "mx.vouch.test"
	opts.Now = func() time.Time { return sendNow }
	var err error
	f.s, err = NewSender(opts, f.store, testResolver(t, f.dns), slog.New(slog.NewTextHandler(f.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *sendFixture) unreported(t *testing.T) int64 {
	t.Helper()
	aggs, err := f.store.Unreported(context.Background(), sendNow.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, a := range aggs {
		n += messages(a)
	}
	return n
}

func TestSendDueDelivers(t *testing.T) {
	f := newSendFixture(t, SenderOptions{},
		evaluation("example.com", "192.0.2.1", sendEvDay, "mailto:dmarc@example.com", "mailto:ext@reports.test!10m", "https://example.com/r"),
		evaluation("example.com", "192.0.2.1", sendEvDay.Add(time.Hour), "mailto:dmarc@example.com", "mailto:ext@reports.test!10m", "https://example.com/r"),
		evaluation("example.com", "2001:db8::1", sendEvDay, "mailto:dmarc@example.com", "mailto:ext@reports.test!10m", "https://example.com/r"),
		evaluation("example.com", "192.0.2.9", sendNow, "mailto:dmarc@example.com"), // today: not due
	)
	sum, err := f.s.SendDue(context.Background(), dueBefore(sendNow, 30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Results) != 1 || sum.Count(Sent) != 1 {
		t.Fatalf("results %+v", sum.Results)
	}
	msgs := f.smtp.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages sent", len(msgs))
	}
	m := msgs[0]
	if m.From != testRep.Email || !slices.Equal(m.To, []string{"dmarc@example.com", "ext@reports.test"}) {
		t.Errorf("envelope %s -> %v", m.From, m.To)
	}
	var fb Feedback
	_, _, _, doc := readReportMail(t, []byte(m.Data))
	if err := xml.Unmarshal(doc, &fb); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, r := range fb.Records {
		counts[r.Row.SourceIP] += r.Row.Count
	}
	if fb.Policy.Domain != "example.com" || counts["192.0.2.1"] != 2 || len(counts) != 2 || fb.Metadata.OrgName != testRep.OrgName {
		t.Errorf("report: domain %s, counts %v, org %s", fb.Policy.Domain, counts, fb.Metadata.OrgName)
	}
	if n := f.unreported(t); n != 1 { // only today's message is left
		t.Errorf("%d messages left unreported, want 1", n)
	}
	for _, want := range []string{`rua=https://example.com/r`, `msg="dmarc report sent"`, `day=2026-12-04`} {
		if !strings.Contains(f.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, f.logs)
		}
	}
}

func TestSendDueOutcomes(t *testing.T) {
	old := sendNow.AddDate(0, 0, -5)
	tests := []struct {
		name     string
		rua      []string
		day      time.Time
		opts     SenderOptions
		dnsFault string // a name that answers SERVFAIL
		replies  map[string]string
		want     string
		to       []string // the recipients of the one message sent
		log      string
	}{
		{name: "no rua", want: Dropped, log: "no usable rua"},
		{name: "no mailto", rua: []string{"https://example.com/x"}, want: Dropped, log: "not a mailto"},
		{name: "external without record", rua: []string{"mailto:a@elsewhere.test"}, want: Dropped, log: "does not accept reports"},
		{name: "external with record", rua: []string{"mailto:a@reports.test"}, want: Sent, to: []string{"a@reports.test"}},
		{name: "external check fails for now", rua: []string{"mailto:a@example.com", "mailto:a@reports.test"},
			dnsFault: "example.com._report._dmarc.reports.test", want: Retry, log: "temporary"},
		{name: "size limits", rua: []string{"mailto:small@example.com!1k", "mailto:big@example.com!10m"}, want: Sent, to: []string{"big@example.com"}, log: "over its size limit"},
		{name: "over every size limit", rua: []string{"mailto:small@example.com!1k"}, want: Dropped, log: "!size limit"},
		{name: "over max_report_size", rua: []string{"mailto:big@example.com!10m"}, opts: SenderOptions{MaxReportSize: 1000}, want: Dropped, log: "max_report_size"},
		{name: "MTA says later", rua: []string{"mailto:a@example.com"}, replies: map[string]string{"RCPT": "451 4.3.0 later"}, want: Retry, log: "451"},
		{name: "MTA says later, too long", rua: []string{"mailto:a@example.com"}, day: old, opts: SenderOptions{RetryFor: 72 * time.Hour},
			replies: map[string]string{"RCPT": "451 4.3.0 later"}, want: Dropped, log: "retry_for"},
		{name: "MTA refuses one", rua: []string{"mailto:a@example.com", "mailto:b@example.com"},
			replies: map[string]string{"RCPT TO:<b@": "550 5.1.1 unknown"}, want: Sent, to: []string{"a@example.com"}, log: "refused"},
		{name: "MTA refuses all", rua: []string{"mailto:a@example.com"}, replies: map[string]string{"data-end": "554 5.7.1 no"}, want: Dropped, log: "554"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			day := tt.day
			if day.IsZero() {
				day = sendEvDay
			}
			f := newSendFixture(t, tt.opts, evaluation("example.com", "192.0.2.1", day, tt.rua...))
			if tt.dnsFault != "" {
				f.dns.SetFault(tt.dnsFault, dnstest.ServFail)
			}
			f.smtp.SetReplies(tt.replies)
			sum, err := f.s.SendDue(context.Background(), sendNow)
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Results) != 1 || sum.Results[0].Outcome != tt.want {
				t.Fatalf("results %+v, want %s", sum.Results, tt.want)
			}
			msgs := f.smtp.Messages()
			var to []string
			if len(msgs) > 0 {
				to = msgs[0].To
			}
			if len(msgs) > 1 || !slices.Equal(to, tt.to) {
				t.Errorf("sent %d messages, to %v; want to %v", len(msgs), to, tt.to)
			}
			if len(msgs) == 1 && strings.Contains(msgs[0].Data, "small@") {
				t.Errorf("the address skipped for its size is in the mail:\n%s", msgs[0].Data[:300])
			}
			left := f.unreported(t)
			if (tt.want == Retry) != (left == 1) {
				t.Errorf("%d messages left unreported after %s", left, tt.want)
			}
			if !strings.Contains(f.logs.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, f.logs)
			}
		})
	}
}

// A report refused for now is sent by a later pass, once the claim has
// expired, and only then marked done; while a claim holds, nothing goes.
func TestSendDueRetries(t *testing.T) {
	f := newSendFixture(t, SenderOptions{ClaimTTL: time.Nanosecond}, evaluation("example.com", "192.0.2.1", sendEvDay, "mailto:a@example.com"))
	f.smtp.SetReplies(map[string]string{"greeting": "421 4.3.2 not now"})
	if sum, _ := f.s.SendDue(context.Background(), sendNow); sum.Count(Retry) != 1 {
		t.Fatalf("first pass %+v", sum.Results)
	}
	f.smtp.SetReplies(nil)
	const otherTTL = 100 * time.Millisecond
	if ok, _ := f.store.Claim(context.Background(), Period{Domain: "example.com", Day: "2026-12-04"}, "other", otherTTL); !ok {
		t.Fatal("claim not expired")
	}
	if sum, _ := f.s.SendDue(context.Background(), sendNow); sum.Count(Busy) != 1 || len(f.smtp.Messages()) != 0 {
		t.Fatalf("pass during another's claim %+v", sum.Results)
	}
	time.Sleep(otherTTL) // the other's claim expires
	if sum, _ := f.s.SendDue(context.Background(), sendNow); sum.Count(Sent) != 1 || len(f.smtp.Messages()) != 1 {
		t.Fatalf("retry pass %+v", sum.Results)
	}
	if sum, _ := f.s.SendDue(context.Background(), sendNow); len(sum.Results) != 0 || len(f.smtp.Messages()) != 1 {
		t.Fatalf("after it was sent %+v", sum.Results)
	}
}

func TestDryRun(t *testing.T) {
	f := newSendFixture(t, SenderOptions{},
		evaluation("example.com", "192.0.2.1", sendEvDay, "mailto:a@example.com"),
		evaluation("norua.test", "192.0.2.1", sendEvDay),
		evaluation("example.com", "192.0.2.2", sendNow, "mailto:a@example.com"))
	dir := t.TempDir()
	sum, err := f.s.DryRun(context.Background(), sendNow.Add(24*time.Hour), dir)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count(Written) != 2 || sum.Count(Unusable) != 1 {
		t.Fatalf("results %+v", sum.Results)
	}
	for _, r := range sum.Results {
		if r.Outcome != Written {
			continue
		}
		if filepath.Dir(r.File) != dir || !strings.HasSuffix(r.File, ".xml.gz") {
			t.Errorf("file %s", r.File)
		}
		if _, err := os.Stat(r.File); err != nil {
			t.Error(err)
		}
	}
	if n := f.unreported(t); n != 3 || len(f.smtp.Messages()) != 0 {
		t.Errorf("dry run changed the store (%d left) or sent %d", n, len(f.smtp.Messages()))
	}
	if ok, _ := f.store.Claim(context.Background(), Period{Domain: "example.com", Day: "2026-12-04"}, "x", time.Hour); !ok {
		t.Error("dry run left a claim")
	}
}

func TestSchedule(t *testing.T) {
	at := 30 * time.Minute
	day := func(h, m int) time.Time { return time.Date(2026, 12, 5, h, m, 0, 0, time.UTC) }
	tests := []struct {
		now       time.Time
		due, next time.Time
	}{
		{day(0, 10), day(0, 0).AddDate(0, 0, -1), day(0, 30)},
		{day(0, 30), day(0, 0), day(1, 0)},
		{day(13, 5), day(0, 0), day(14, 0)},
		{day(23, 59), day(0, 0), day(0, 0).AddDate(0, 0, 1)},
	}
	for _, tt := range tests {
		if got := dueBefore(tt.now, at); !got.Equal(tt.due) {
			t.Errorf("dueBefore(%s) = %s, want %s", tt.now, got, tt.due)
		}
		if got := nextPass(tt.now, at); !got.Equal(tt.next) {
			t.Errorf("nextPass(%s) = %s, want %s", tt.now, got, tt.next)
		}
	}
	if _, err := parseSendAt("25:00"); err == nil {
		t.Error("send_at 25:00 accepted")
	}
	if d, err := parseSendAt("06:15"); err != nil || d != 6*time.Hour+15*time.Minute {
		t.Errorf("06:15: %v %v", d, err)
	}
}

// Run sends at once what is due, then stops when its context ends.
func TestRun(t *testing.T) {
	f := newSendFixture(t, SenderOptions{}, evaluation("example.com", "192.0.2.1", sendEvDay, "mailto:a@example.com"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.s.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.smtp.Messages()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if len(f.smtp.Messages()) != 1 {
		t.Fatalf("%d sent", len(f.smtp.Messages()))
	}
}

func TestNewSenderErrors(t *testing.T) {
	_, err := NewSender(SenderOptions{Reporter: Reporter{Email: "a\r\nb@x.test"}, SendAt: "noon"}, NewMemoryStore(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	testutil.ErrorMentions(t, err, "org_name", "from", "send_at")
}
