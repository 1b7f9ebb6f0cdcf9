package dmarcreport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"vouch/internal/mailtext"
)

// Capture takes the aggregate reports that receivers send to the admin's
// rua mailboxes out of the mail as it passes the milter. The milter copies
// such a message into a Captured (headers as received, then the body), in
// memory bounded per message (Limits.MaxMessage) and for all messages at
// once (CaptureOptions.Budget); at end of message it hands the copy to
// one worker goroutine that parses it and keeps the reports. Parsing
// never runs in a milter callback, and never more than one at a time.
// The message itself is delivered in any case: a copy over a limit, or one
// the worker has no room for, is delivered unread, with a log line.
type Capture struct {
	store     Store
	log       *slog.Logger
	limits    Limits
	budget    int64
	mailboxes map[string]bool // local@domain, lower case, without +detail
	discard   bool
	parse     func(io.Reader, Limits) ([]Feedback, error) // ParseMessage; tests put a panic here

	used   atomic.Int64 // bytes held by all Captured copies
	queue  *queue[*job]
	closed chan struct{} // closed when run has read the last message
}

// CaptureOptions configure a Capture ([dmarc_reports] receiving keys).
type CaptureOptions struct {
	Mailboxes []string // rua_mailboxes
	Limits    Limits   // max_message_size, max_xml_size
	Discard   bool     // discard_received
	Budget    int64    // bytes all copies may hold at once; 0: 64 MiB
	Queue     int      // messages waiting for the worker; 0: 32
}

// job is one message for the worker.
type job struct {
	raw    []byte
	held   int64 // budget bytes to give back
	from   Origin
	result chan int // reports read (buffered)
}

// Origin is what the milter knows about a report message's origin.
type Origin struct {
	MailFrom   string
	HeaderFrom string
	// Authenticated: the message's DMARC passed, or it came from a
	// trusted client (internal_hosts, SMTP AUTH).
	Authenticated bool
}

// NewCapture starts the worker; Close ends it.
func NewCapture(store Store, log *slog.Logger, o CaptureOptions) *Capture {
	return newCapture(store, log, o, ParseMessage)
}

func newCapture(store Store, log *slog.Logger, o CaptureOptions, parse func(io.Reader, Limits) ([]Feedback, error)) *Capture {
	if o.Budget <= 0 {
		o.Budget = 64 << 20
	}
	if o.Queue <= 0 {
		o.Queue = 32
	}
	c := &Capture{store: store, log: log, limits: o.Limits, budget: o.Budget, discard: o.Discard, parse: parse,
		mailboxes: map[string]bool{}, queue: newQueue[*job](o.Queue), closed: make(chan struct{})}
	for _, m := range o.Mailboxes {
		c.mailboxes[mailboxKey(m)] = true
	}
	go c.run()
	return c
}

// mailboxKey is an address compared case-insensitively, without <> and
// without a +detail suffix of the local part.
func mailboxKey(addr string) string {
	addr = strings.ToLower(strings.Trim(addr, "<> \t"))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := addr[:at], strings.TrimRight(addr[at+1:], ". \t<>")
	if plus := strings.IndexByte(local, '+'); plus > 0 {
		local = local[:plus]
	}
	return local + "@" + domain
}

// Wanted reports whether rcpt is one of the rua mailboxes.
func (c *Capture) Wanted(rcpt string) bool { return c.mailboxes[mailboxKey(rcpt)] }

// Discard reports whether a message whose reports were all read is
// discarded (discard_received).
func (c *Capture) Discard() bool { return c.discard }

// Captured is the copy of one message being received.
type Captured struct {
	c       *Capture
	buf     bytes.Buffer
	held    int64
	crlf    mailtext.CRLF
	skipped string // why the message is not read; "" while it is copied
}

// Begin starts the copy of a message.
func (c *Capture) Begin() *Captured { return &Captured{c: c} }

// Header copies one header field as the MTA handed it over.
func (m *Captured) Header(name, value string) {
	m.write([]byte(name + ":" + value + "\n"))
}

// EndHeaders copies the blank line after the header.
func (m *Captured) EndHeaders() { m.write([]byte("\n")) }

// Body copies a body chunk.
func (m *Captured) Body(chunk []byte) { m.write(chunk) }

// write appends p (line ends made CRLF) while the message stays within
// max_message_size and all copies within the budget; else the copy is
// dropped and the message will be delivered unread.
func (m *Captured) write(p []byte) {
	if m.skipped != "" {
		return
	}
	p = m.crlf.Fix(p)
	n := int64(len(p))
	if lim := m.c.limits.MaxMessage; lim > 0 && int64(m.buf.Len())+n > lim {
		m.skip(fmt.Sprintf("larger than max_message_size (%d bytes)", lim))
		return
	}
	if m.c.used.Add(n) > m.c.budget {
		m.c.used.Add(-n)
		m.skip(fmt.Sprintf("report messages being received hold more than %d bytes", m.c.budget))
		return
	}
	m.held += n
	m.buf.Write(p)
}

func (m *Captured) skip(reason string) {
	m.skipped = reason
	m.Release()
}

// Release gives the copy's memory back (the message was aborted, or is
// not read).
func (m *Captured) Release() {
	m.c.used.Add(-m.held)
	m.held = 0
	m.buf = bytes.Buffer{}
}

// Submit hands the copy to the worker at end of message. The result
// channel gets the number of reports read from it once the worker is done
// (0: none, the message was malformed); nil means the message is not read
// (over a limit, or the worker's queue is full), which Submit logs.
func (m *Captured) Submit(from Origin, qid string) <-chan int {
	c := m.c
	if m.skipped != "" {
		c.log.Warn("dmarc reports: report message delivered unread", "qid", qid, "mail_from", mailtext.Printable(from.MailFrom), "reason", m.skipped)
		return nil
	}
	j := &job{raw: m.buf.Bytes(), held: m.held, from: from, result: make(chan int, 1)}
	m.held, m.buf = 0, bytes.Buffer{} // the job owns them now
	if c.queue.put(j) {
		return j.result
	}
	c.used.Add(-j.held)
	c.log.Warn("dmarc reports: report message delivered unread", "qid", qid, "mail_from", mailtext.Printable(from.MailFrom),
		"reason", "the report reader is busy (queue full) or stopping")
	return nil
}

// Held is the bytes all copies hold now.
func (c *Capture) Held() int64 { return c.used.Load() }

// Close reads the messages already queued and stops the worker.
func (c *Capture) Close() {
	c.queue.stop()
	<-c.closed
}

func (c *Capture) run() {
	defer close(c.closed)
	for {
		select {
		case j := <-c.queue.ch:
			c.finish(j)
		case <-c.queue.done:
			for len(c.queue.ch) > 0 {
				c.finish(<-c.queue.ch)
			}
			return
		}
	}
}

func (c *Capture) finish(j *job) {
	j.result <- c.read(j)
	c.used.Add(-j.held)
}

// read parses one message and keeps what it finds: each report, and the
// message as malformed when it (or one of its attachments) cannot be
// read. A panic is logged and the message counts as unread.
func (c *Capture) read(j *job) (n int) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("dmarc reports: panic reading a report message", "mail_from", mailtext.Printable(j.from.MailFrom),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			n = 0
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().UTC()
	fbs, err := c.parse(bytes.NewReader(j.raw), c.limits)
	if err == nil && len(fbs) == 0 {
		err = fmt.Errorf("no aggregate report in the message")
	}
	if err != nil {
		c.log.Warn("dmarc reports: unreadable report message kept as malformed", "mail_from", mailtext.Printable(j.from.MailFrom),
			"header_from", mailtext.Printable(j.from.HeaderFrom), "reason", mailtext.Printable(err.Error()), "reports", len(fbs))
		if serr := c.store.AddMalformed(ctx, Malformed{ReceivedAt: now, MailFrom: j.from.MailFrom, Reason: err.Error(), Raw: j.raw}); serr != nil {
			c.log.Error("dmarc reports: cannot keep a malformed report message", "err", serr.Error())
		}
	}
	// A bad attachment beside good ones: the good reports are kept too.
	for i := range fbs {
		fb := &fbs[i]
		r := Received{ID: ReceivedID(fb), ReceivedAt: now, MailFrom: j.from.MailFrom, HeaderFrom: j.from.HeaderFrom,
			Authenticated: j.from.Authenticated, Feedback: *fb}
		dup, err := c.store.AddReceived(ctx, r)
		if err != nil {
			c.log.Error("dmarc reports: cannot keep a received report", "org", mailtext.Printable(fb.Metadata.OrgName),
				"report_id", mailtext.Printable(fb.Metadata.ReportID), "err", err.Error())
			continue
		}
		n++
		c.log.Info("dmarc reports: report received", "org", mailtext.Printable(fb.Metadata.OrgName), "report_id", mailtext.Printable(fb.Metadata.ReportID),
			"domain", mailtext.Printable(fb.Policy.Domain), "records", len(fb.Records), "authenticated", j.from.Authenticated, "duplicate", dup)
	}
	return n
}
