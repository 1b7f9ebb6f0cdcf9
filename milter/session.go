package milter

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"

	"vouch/internal/dmarcreport"
	"vouch/internal/mailtext"
	"vouch/internal/metrics"
	"vouch/internal/smtpreply"
	"vouch/internal/verify"
	"vouch/policy"
	"vouch/signer"
	"vouch/whitelist"
)

func sprintf(format string, v ...any) string { return fmt.Sprintf(format, v...) }

// session is the state of one milter connection (one SMTP connection).
type session struct {
	gomilter.NoOpMilter
	srv *Server
	env *Env

	// connection
	client   string // the MTA's name for the client, "[ip]" if it has none
	ip       netip.Addr
	internal string // the internal_hosts entry that matched, or ""
	helo     string
	screen   *policy.Conn
	authID   string

	// transaction
	sender       string
	rcpts        []string
	auth         string // SASL login, or "" when not authenticated
	decision     *policy.Decision
	headers      []mailtext.Header
	hdrBytes     int
	arIndexes    []int // 1-based indexes of our-id Authentication-Results headers
	arCount      int
	msg          *signer.Message
	verifier     *verify.Message
	sigReqs      []signer.Request
	fromDom      string
	noSign       string // why the message is not signed
	noSignClass  string // the same as a metric label
	failure      string // internal trouble: the message is tempfailed at EOM
	failureClass string
	malformed    string // a header no MTA should send: the message is rejected at EOM
	started      time.Time
	reportRcpts  int                   // recipients that are rua mailboxes (Env.Capture)
	capture      *dmarcreport.Captured // the copy of a report message, from its first header
	dmarcPass    bool                  // the inbound message passed DMARC (a report from it is authenticated)

	counted   bool // this connection is counted in the sessions metric
	overLimit bool // more than limits.max_sessions connections were open when it negotiated
}

var (
	tempfailInternal = mustReply(smtpreply.Reply{Code: 451, Enhanced: "3.0", Text: "Temporary local problem, try again later"})
	tempfailBusy     = mustReply(smtpreply.Reply{Code: 451, Enhanced: "3.2", Text: "Too busy, try again later"})
)

// rejectMalformed answers a message no MTA should pass on (RFC 5322 §2.2:
// no NUL in a header field).
var rejectMalformed = mustReply(smtpreply.Reply{Code: 550, Enhanced: "6.0", Text: "Message header contains a NUL character"})

// reply is r as a milter response.
func reply(r smtpreply.Reply) (*gomilter.Response, error) {
	return gomilter.RejectWithCodeAndReason(uint16(r.Code), r.Reason())
}

func mustReply(r smtpreply.Reply) *gomilter.Response {
	resp, err := reply(r)
	if err != nil {
		panic(err)
	}
	return resp
}

// guard turns a panic in a callback into a tempfail for the message and a
// log line with the stack, instead of the end of the daemon.
func (s *session) guard(stage string, resp **gomilter.Response, err *error) {
	if p := recover(); p != nil {
		s.metrics().Panic()
		s.log().Error("panic in milter callback; message tempfailed", "stage", stage, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		s.fail("panic", "internal error in "+stage)
		s.abortSigning()
		if resp != nil {
			*resp = tempfailInternal
		}
		if err != nil {
			*err = nil
		}
	}
}

func (s *session) metrics() *metrics.Metrics {
	if s.env != nil {
		return s.env.Metrics
	}
	return nil
}

func (s *session) log() *slog.Logger {
	if s.env != nil {
		return s.env.Log
	}
	return s.srv.log
}

func (s *session) NewConnection(m gomilter.Modifier) (err error) {
	defer s.guard("connect", nil, &err)
	if !s.counted {
		s.counted = true
		s.env = s.srv.env.Load()
		s.metrics().Sessions(1)
		// Connections count from accept (the guard), this one included.
		s.overLimit = s.srv.limits.MaxSessions > 0 && s.srv.conns.Load() > int64(s.srv.limits.MaxSessions)
	}
	s.env = s.srv.env.Load()
	s.resetConnection()
	return nil
}

func (s *session) resetConnection() {
	if s.screen != nil {
		s.screen.Close()
	}
	s.client, s.ip, s.internal, s.helo, s.screen = "", netip.Addr{}, "", "", nil
	s.resetMessage()
}

func (s *session) resetMessage() {
	s.abortSigning()
	s.sender, s.auth, s.decision, s.rcpts = "", "", nil, s.rcpts[:0]
	s.headers, s.hdrBytes, s.arIndexes, s.arCount = s.headers[:0], 0, nil, 0
	s.sigReqs, s.fromDom, s.noSign, s.noSignClass, s.failure, s.failureClass = nil, "", "", "", "", ""
	s.malformed = ""
	s.started = time.Time{}
	if s.capture != nil {
		s.capture.Release()
		s.capture = nil
	}
	s.reportRcpts, s.dmarcPass = 0, false
}

// fail marks the message for a tempfail at end of message (the first
// reason counts).
func (s *session) fail(class, detail string) {
	if s.failure == "" {
		s.failure, s.failureClass = detail, class
	}
}

func (s *session) skipSigning(class, detail string) {
	s.noSign, s.noSignClass = detail, class
}

func (s *session) abortSigning() {
	if s.msg != nil {
		s.msg.Abort()
		s.msg = nil
	}
	if s.verifier != nil {
		s.verifier.Abort()
		s.verifier = nil
	}
}

func (s *session) Connect(host string, family string, port uint16, addr string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer s.guard("connect", &resp, &err)
	if s.overLimit {
		// A tempfail at connect reaches the client at MAIL FROM (Postfix).
		s.metrics().SessionRefused()
		s.log().Warn("too many milter sessions: tempfailing", "max_sessions", s.srv.limits.MaxSessions, "client", host)
		return tempfailBusy, nil
	}
	s.client = host
	switch family {
	case "tcp4", "tcp6":
		s.ip, _ = netip.ParseAddr(addr)
		s.ip = s.ip.Unmap()
	default:
		// No address (family unknown or a unix socket): OpenDKIM treats the
		// client as 127.0.0.1, so local submissions stay internal.
		s.ip = netip.MustParseAddr("127.0.0.1")
	}
	if ok, entry := s.env.Signer.Internal(host, s.ip); ok {
		s.internal = entry
	} else if s.env.Screener != nil {
		s.screen = s.env.Screener.Connect(s.ip)
	}
	s.authID = s.env.AuthservID
	if s.authID == "" {
		s.authID = m.Get(gomilter.MacroMTAFQDN)
	}
	return gomilter.RespContinue, nil
}

func (s *session) Helo(name string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer s.guard("helo", &resp, &err)
	s.helo = name
	if s.screen != nil {
		s.screen.Helo(name)
	}
	return gomilter.RespContinue, nil
}

func (s *session) MailFrom(from string, esmtpArgs string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer s.guard("mail", &resp, &err)
	s.resetMessage()
	s.started = time.Now()
	s.sender = from
	s.auth = m.Get(gomilter.MacroAuthAuthen)
	if s.auth == "" && m.Get(gomilter.MacroAuthType) != "" {
		s.auth = "(" + m.Get(gomilter.MacroAuthType) + ")"
	}
	if s.auth != "" && s.env.Accounts != nil {
		if r := s.env.Accounts.CheckSender(context.Background(), s.auth, s.ip); r != nil {
			return reply(*r)
		}
	}
	if s.screen == nil {
		s.startVerify(from)
		return gomilter.RespContinue, nil
	}
	d := s.screen.Mail(context.Background(), from, s.auth != "")
	s.decision = &d
	s.recordDecision(d)
	if d.Reply != nil {
		return reply(*d.Reply)
	}
	s.startVerify(from)
	return gomilter.RespContinue, nil
}

// startVerify starts DKIM/SPF/DMARC verification of an inbound message;
// SPF runs in the background while the message comes in.
func (s *session) startVerify(from string) {
	if s.env.Verify != nil && s.internal == "" && s.auth == "" {
		s.verifier = verify.NewMessage(s.env.Verify.Config, s.ip, s.helo, from)
	}
}

func (s *session) RcptTo(rcptTo string, esmtpArgs string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer s.guard("rcpt", &resp, &err)
	if len(s.rcpts) < maxRcpts {
		s.rcpts = append(s.rcpts, rcptTo)
	}
	if s.env.Capture != nil && s.env.Capture.Wanted(rcptTo) {
		s.reportRcpts++
	}
	return gomilter.RespContinue, nil
}

// maxRcpts bounds the recipients kept per message (Postfix's default
// smtpd_recipient_limit is 1000).
const maxRcpts = 10000

func (s *session) Header(name string, value string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer s.guard("header", &resp, &err)
	if name == nulHeaderName {
		// The guard replaced NULs in the previous header's value.
		if s.malformed == "" {
			name := ""
			if len(s.headers) > 0 {
				name = s.headers[len(s.headers)-1].Name
			}
			s.malformed = fmt.Sprintf("NUL byte in the value of header %.64q", name)
		}
		return gomilter.RespContinue, nil
	}
	if s.reportRcpts > 0 {
		if s.capture == nil {
			s.capture = s.env.Capture.Begin()
		}
		s.capture.Header(name, value)
	}
	s.hdrBytes += len(name) + len(value) + 3
	if s.env.MaxHeaders > 0 && s.hdrBytes > s.env.MaxHeaders {
		s.fail("header_limit", fmt.Sprintf("header block larger than %d bytes", s.env.MaxHeaders))
		return gomilter.RespContinue, nil
	}
	if s.headers == nil {
		// One allocation for a usual header block instead of growing it
		// by doubling from zero in every session.
		s.headers = make([]mailtext.Header, 0, 32)
	}
	s.headers = append(s.headers, mailtext.Header{Name: name, Value: value})
	if strings.EqualFold(name, "Authentication-Results") {
		s.arCount++
		if s.authID != "" && verify.ClaimsAuthServID(value, s.authID) {
			s.arIndexes = append(s.arIndexes, s.arCount)
		}
	}
	return gomilter.RespContinue, nil
}

// Headers (end of headers) decides whether the message is signed and, if
// so, starts the signatures so that the body is hashed as it streams.
func (s *session) Headers(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer s.guard("eoh", &resp, &err)
	if s.capture != nil {
		s.capture.EndHeaders()
	}
	if s.failure != "" {
		return gomilter.RespContinue, nil
	}
	if s.internal == "" && s.auth == "" {
		s.skipSigning("untrusted", "untrusted client")
		if s.verifier != nil {
			s.verifier.Headers(s.headers)
		}
		return gomilter.RespContinue, nil
	}
	local, domain, ferr := signer.FromAddress(s.headers)
	if ferr != nil {
		s.skipSigning("from_header", ferr.Error())
		return gomilter.RespContinue, nil
	}
	s.fromDom = domain
	reqs, lerr := s.env.Signer.Lookup(local, domain)
	if lerr != nil {
		// A key that should sign cannot be loaded: sending the message
		// unsigned would get it refused downstream; defer it instead.
		s.fail("key_unavailable", "signing key unavailable: "+lerr.Error())
		return gomilter.RespContinue, nil
	}
	if len(reqs) == 0 {
		s.skipSigning("no_key", "no key for "+domain)
		return gomilter.RespContinue, nil
	}
	msg, serr := s.env.Signer.NewMessage(reqs, s.headers)
	if serr != nil {
		s.fail("signing", "cannot start signing: "+serr.Error())
		return gomilter.RespContinue, nil
	}
	s.msg, s.sigReqs = msg, reqs
	return gomilter.RespContinue, nil
}

func (s *session) BodyChunk(chunk []byte, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer s.guard("body", &resp, &err)
	if s.capture != nil {
		s.capture.Body(chunk)
	}
	if s.verifier != nil {
		s.verifier.Write(chunk)
	}
	if s.msg != nil {
		if _, werr := s.msg.Write(chunk); werr != nil {
			s.fail("signing", "signing: "+werr.Error())
			s.abortSigning()
		}
	}
	return gomilter.RespContinue, nil
}

func (s *session) EndOfMessage(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer s.guard("eom", &resp, &err)
	qid := m.Get(gomilter.MacroQueueId)
	defer s.resetMessage()
	if s.malformed != "" {
		s.logMessage(qid, "rejected", slog.String("reason", s.malformed))
		return rejectMalformed, nil
	}
	if s.env.Accounts != nil && s.env.Accounts.ReleaseReply(context.Background(), s.rcpts, s.sender, s.ip, s.trustedBy()) {
		s.logMessage(qid, "discarded", slog.String("reason", "reply releasing a frozen account"))
		return gomilter.RespDiscard, nil
	}
	if s.failure != "" {
		s.metrics().Tempfailed(s.failureClass)
		s.logMessage(qid, "tempfail", slog.String("reason", s.failure))
		return tempfailInternal, nil
	}
	if s.msg != nil {
		values, ferr := s.msg.Finish()
		s.msg = nil
		if ferr != nil {
			s.metrics().Tempfailed("signing")
			s.logMessage(qid, "tempfail", slog.String("reason", "signing failed: "+ferr.Error()))
			return tempfailInternal, nil
		}
		for _, v := range values {
			if err := m.InsertHeader(1, "DKIM-Signature", v); err != nil {
				return nil, err
			}
		}
		for _, r := range s.sigReqs {
			s.metrics().Signed(r.Domain)
		}
		if s.log().Enabled(context.Background(), slog.LevelInfo) { // no strings for a line not written
			sigs := make([]string, len(s.sigReqs))
			for i, r := range s.sigReqs {
				sigs[i] = fmt.Sprintf("d=%s s=%s a=%s", r.Domain, r.Key.Selector, signer.Algorithm(r.Key.Signer))
			}
			s.logMessage(qid, "signed", slog.String("signatures", strings.Join(sigs, ", ")))
		}
		return s.accept(qid)
	}
	if s.internal == "" && s.auth == "" {
		return s.inbound(qid, m)
	}
	s.metrics().Unsigned(s.noSignClass)
	s.logMessage(qid, "not signed", slog.String("reason", s.noSign))
	return s.accept(qid)
}

// trustedBy says why the client is trusted (SMTP AUTH or internal_hosts),
// or "".
func (s *session) trustedBy() string {
	switch {
	case s.auth != "":
		return "smtp auth " + s.auth
	case s.internal != "":
		return "internal host " + s.internal
	}
	return ""
}

// inbound ends an untrusted message: verification results, the policy's
// decision about them, and the Authentication-Results header.
func (s *session) inbound(qid string, m gomilter.Modifier) (*gomilter.Response, error) {
	var results verify.Results
	var d policy.MessageDecision
	// The log line's attributes are built only when it is written: at
	// log_level = "warn" they are per-message garbage.
	logOn := s.log().Enabled(context.Background(), slog.LevelInfo)
	var attrs []slog.Attr
	if logOn {
		attrs = []slog.Attr{slog.String("not_signed", s.noSign)}
	}
	if s.verifier != nil {
		results = s.verifier.Finish()
		s.verifier = nil
		// The log line names the From domain DMARC evaluated, the
		// Authentication-Results header's header.from.
		s.fromDom = results.DMARC.FromDomain
		v := s.env.Verify
		entry, allow := policy.Allowlisted(v.Allowlist, s.ip, results)
		d = policy.DecideMessage(v.Policy, results, allow, v.Mode)
		if logOn {
			attrs = append(attrs, verifyAttrs(results, d, allow, entry)...)
		}
		mt := s.metrics()
		for _, r := range results.DKIM {
			mt.Verify("dkim", string(r.Status))
		}
		if results.SPF.Status != "" {
			mt.Verify("spf", string(results.SPF.Status))
		}
		if results.DMARC.Status != "" {
			mt.Verify("dmarc", string(results.DMARC.Status))
		}
		s.dmarcPass = results.DMARC.Status == verify.Pass
		s.recordReportRow(results, d, entry, allow)
	}
	if d.Reply != nil {
		if logOn {
			attrs = append(attrs, slog.String("reply", d.Reply.String()))
		}
		s.logMessage(qid, "refused", attrs...)
		return reply(*d.Reply)
	}
	if err := s.addAuthResults(m, results); err != nil {
		return nil, err
	}
	result := "accepted"
	if d.Quarantine {
		if err := m.Quarantine(d.QuarantineReason); err != nil {
			return nil, err
		}
		result = "quarantined"
	}
	s.logMessage(qid, result, attrs...)
	return s.accept(qid)
}

// recordReportRow hands the message's DMARC evaluation to the aggregate
// reports (a buffer: this never waits for the store).
func (s *session) recordReportRow(results verify.Results, d policy.MessageDecision, entry whitelist.Entry, allow bool) {
	if s.env.Reports == nil {
		return
	}
	in := dmarcreport.Inbound{Time: time.Now(), ClientIP: s.ip, MailFrom: s.sender, TrustedBy: s.trustedBy(), Results: results, Decision: d}
	if allow {
		in.Allowlist = entry.String()
	}
	if ev, ok := dmarcreport.NewEvaluation(in); ok {
		s.env.Reports.Record(ev)
	}
}

// verifyAttrs are the verification results and the decision about them
// for the message's log line.
func verifyAttrs(results verify.Results, d policy.MessageDecision, allow bool, entry whitelist.Entry) []slog.Attr {
	attrs := []slog.Attr{slog.String("dkim", string(results.DKIMStatus())), slog.String("spf", string(results.SPF.Status)),
		slog.String("dmarc", string(results.DMARC.Status)), slog.String("action", d.Action.String())}
	if allow {
		attrs = append(attrs, slog.String("allowlisted", entry.String()))
	}
	if d.Reason != "" {
		attrs = append(attrs, slog.String("cause", d.Cause), slog.String("reason", d.Reason))
	}
	if d.Trial {
		attrs = append(attrs, slog.String("would", d.Configured.String()))
	}
	if results.DKIMSkipped > 0 {
		attrs = append(attrs, slog.Int("dkim_not_checked", results.DKIMSkipped))
	}
	return attrs
}

// accept ends an accepted message; an authenticated sender's message
// counts towards its account's limits, and a message to a rua mailbox
// goes to the report reader.
func (s *session) accept(qid string) (*gomilter.Response, error) {
	if s.auth != "" && s.env.Accounts != nil {
		s.env.Accounts.Accepted(context.Background(), s.auth, s.ip, s.rcpts)
	}
	if s.capture != nil && s.readReports(qid) {
		return gomilter.RespDiscard, nil
	}
	return gomilter.RespAccept, nil
}

// discardWait bounds how long end of message waits for the report reader
// when discard_received may discard the message.
const discardWait = 20 * time.Second

// readReports hands the copy of a report message to the reader. It
// reports whether the message is to be discarded: discard_received is
// on, every recipient is a rua mailbox, and at least one report was read
// from it. Only then does end of message wait for the reader; otherwise
// the message goes on at once and is read in the background.
func (s *session) readReports(qid string) bool {
	c := s.capture
	s.capture = nil
	from := dmarcreport.Origin{MailFrom: s.sender, Authenticated: s.dmarcPass || s.trustedBy() != ""}
	if authors, _ := mailtext.Authors(s.headers); len(authors) > 0 && authors[0].Err == nil {
		from.HeaderFrom = authors[0].Local + "@" + authors[0].Domain
	}
	done := c.Submit(from, qid)
	if done == nil || !s.env.Capture.Discard() || s.reportRcpts != len(s.rcpts) {
		return false
	}
	select {
	case n := <-done:
		if n > 0 {
			s.log().Info("dmarc reports: report message discarded after reading (discard_received)", "qid", qid, "reports", n)
			return true
		}
	case <-time.After(discardWait):
		s.log().Warn("dmarc reports: report reader too slow; message delivered", "qid", qid)
	}
	return false
}

// addAuthResults removes Authentication-Results headers that claim our
// authserv-id (a sender forged them; RFC 8601 §5) and adds ours.
func (s *session) addAuthResults(m gomilter.Modifier, results verify.Results) error {
	if s.authID == "" {
		return nil
	}
	// Postfix unlinks deleted headers: delete from the last one up.
	for i := len(s.arIndexes) - 1; i >= 0; i-- {
		if err := m.ChangeHeader(s.arIndexes[i], "Authentication-Results", ""); err != nil {
			return err
		}
	}
	var iprev verify.IPRev
	if s.decision != nil && s.decision.IPRev != "" {
		iprev = verify.IPRev{Result: verify.Status(s.decision.IPRev), IP: s.ip}
	}
	if iprev.Result == "" && s.env.Verify == nil {
		return nil // nothing was checked
	}
	// Index 0: at the very top, above the Received header the MTA adds for
	// this hop (Postfix adds 1 to the index and counts that header), so
	// the results sit above this hop's trace headers (RFC 8601 §5), where
	// OpenDKIM puts its own (test/authres_test.go).
	return m.InsertHeader(0, "Authentication-Results", verify.FormatAuthResults(s.authID, iprev, results))
}

func (s *session) Abort(m gomilter.Modifier) (err error) {
	defer s.guard("abort", nil, &err)
	s.resetMessage()
	return nil
}

func (s *session) Cleanup(m gomilter.Modifier) {
	defer s.guard("cleanup", nil, nil)
	if s.screen != nil {
		s.screen.Close()
		s.screen = nil
	}
	s.abortSigning()
	if s.counted {
		s.counted = false
		s.metrics().Sessions(-1)
	}
}

// logMessage writes the one line per message.
func (s *session) logMessage(qid, result string, attrs ...slog.Attr) {
	if !s.log().Enabled(context.Background(), slog.LevelInfo) {
		return // build no attributes for a line that is not written
	}
	base := []slog.Attr{
		slog.String("qid", qid), slog.String("client", s.client), slog.String("ip", s.ip.String()),
		slog.String("from_domain", s.fromDom), slog.String("result", result),
	}
	if s.auth != "" {
		base = append(base, slog.String("auth", s.auth))
	}
	if s.internal != "" {
		base = append(base, slog.String("internal", s.internal))
	}
	if !s.started.IsZero() {
		base = append(base, slog.Duration("elapsed", time.Since(s.started)))
	}
	s.log().LogAttrs(context.Background(), slog.LevelInfo, "message", append(base, attrs...)...)
}

// recordDecision logs one line per screening decision with what each check
// found, the DNS answers it used and what was done, and counts it.
func (s *session) recordDecision(d policy.Decision) {
	m := s.metrics()
	if d.Exemption == "" {
		m.ScreenDecision(d.Action.String(), d.Trial)
		for _, v := range d.Verdicts {
			m.ScreenResult(string(v.Check), string(v.Outcome), v.Action.String())
		}
	}
	msg := "screen"
	if d.Trial {
		msg = "screen: would reject (trial mode)"
	}
	level := slog.LevelInfo
	if d.Action == policy.Accept && d.Exemption != "" {
		level = slog.LevelDebug
	}
	if !s.log().Enabled(context.Background(), level) {
		return // the evidence strings below are the costliest of a decision
	}
	attrs := []slog.Attr{
		slog.String("ip", s.ip.String()), slog.String("client", s.client), slog.String("helo", mailtext.Printable(s.helo)),
		slog.String("sender", mailtext.Printable(s.sender)), slog.String("action", d.Action.String()),
	}
	if d.Exemption != "" {
		attrs = append(attrs, slog.String("exempt", d.Exemption))
	}
	if d.Cause != "" {
		attrs = append(attrs, slog.String("cause", string(d.Cause)))
	}
	if d.Reply != nil {
		attrs = append(attrs, slog.String("reply", d.Reply.String()))
	}
	if d.Trial {
		attrs = append(attrs, slog.String("would", d.Configured.String()))
	}
	for _, v := range d.Verdicts {
		detail := string(v.Outcome) + " " + v.Action.String()
		if v.Exempt != nil {
			detail = "exempt by " + v.Exempt.String()
		}
		if len(v.Evidence) > 0 {
			detail += " [" + strings.Join(v.Evidence, "; ") + "]"
		}
		attrs = append(attrs, slog.String(string(v.Check), detail))
	}
	s.log().LogAttrs(context.Background(), level, msg, attrs...)
}
