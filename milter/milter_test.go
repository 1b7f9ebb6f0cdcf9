package milter

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/dnstest"
	"vouch/internal/mtaclient"
	"vouch/internal/resolver"
	"vouch/internal/smtpreply"
	"vouch/internal/testutil"
	"vouch/internal/verify"
	"vouch/policy"
	"vouch/signer"
)

// testbed is a vouch milter on loopback with keys for example.test (RSA)
// and dual.test (RSA and Ed25519), their DNS records on a test DNS server,
// and a verifier that looks keys up there.
type testbed struct {
	addr string
	dns  *dnstest.Server
	res  *resolver.Resolver
	srv  *Server
	logs *testutil.LogBuffer
}

var signedHeaders = []string{"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Id"}

func newKey(t testing.TB, dir, name, alg string) (string, crypto.Signer) {
	t.Helper()
	key, pemData, err := signer.GenerateKey(alg, 2048)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".private")
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, key
}

func txtRecord(t testing.TB, owner string, key crypto.Signer) string {
	p, err := signer.PublicKeyRecord(key)
	if err != nil {
		t.Fatal(err)
	}
	rec := fmt.Sprintf("v=DKIM1; k=%s; p=%s", signer.Algorithm(key), p)
	var parts []string
	for len(rec) > 0 {
		n := min(len(rec), 255)
		parts = append(parts, `"`+rec[:n]+`"`)
		rec = rec[n:]
	}
	return owner + " 300 IN TXT " + strings.Join(parts, " ")
}

func newTestbed(t testing.TB, screen *policy.Config) *testbed {
	t.Helper()
	return newTestbedLimits(t, screen, Limits{ReadTimeout: time.Minute})
}

// newTestbedLimits is newTestbed with the server's limits; opts change the
// environment before the server starts.
func newTestbedLimits(t testing.TB, screen *policy.Config, limits Limits, opts ...func(*Env, *resolver.Resolver)) *testbed {
	t.Helper()
	dir := t.TempDir()
	dns := dnstest.New(t)
	var keys []signer.InlineKey
	for _, k := range []struct{ domain, sel, alg string }{
		{"example.test", "rsa1", "rsa"},
		{"dual.test", "rsa1", "rsa"},
		{"dual.test", "ed1", "ed25519"},
	} {
		path, key := newKey(t, dir, k.domain+"-"+k.sel, k.alg)
		dns.MustAdd(txtRecord(t, k.sel+"._domainkey."+k.domain+".", key))
		keys = append(keys, signer.InlineKey{Domain: k.domain, Selector: k.sel, PrivateKey: path})
	}
	sg, _, err := signer.New(signer.Config{
		InternalHosts:   []string{"127.0.0.1", "::1", "10.0.0.0/8"},
		RequireSafeKeys: true,
		Headers:         signedHeaders,
		Oversign:        []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To"}, // default.toml's
		Keys:            keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := resolver.New(resolver.Config{Servers: []string{dns.Addr}, Timeout: time.Second, Attempts: 1, CacheSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogBuffer{}
	env := &Env{Signer: sg, MaxHeaders: 1 << 20, Log: slog.New(slog.NewTextHandler(logs, nil)), AuthservID: "mx.example.test"}
	if screen != nil {
		env.Screener = policy.NewScreener(screen, res, nil)
	}
	for _, o := range opts {
		o(env, res)
	}
	srv := NewServer(env, limits)
	ln := testutil.Serve(t, srv, "tcp", "127.0.0.1:0")
	return &testbed{addr: ln.Addr().String(), dns: dns, res: res, srv: srv, logs: logs}
}

func (tb *testbed) send(t testing.TB, m *mtaclient.Message) *mtaclient.Result {
	t.Helper()
	r, err := mtaclient.Send(mtaclient.NewClient("tcp", tb.addr), m)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// verify checks every DKIM-Signature of a message with go-msgauth against
// the test DNS and returns the verified domains.
func (tb *testbed) verify(t testing.TB, msg []byte) []string {
	t.Helper()
	return verifyStream(t, tb, strings.NewReader(string(msg)))
}

func verifyStream(t testing.TB, tb *testbed, msg io.Reader) []string {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(msg, &dkim.VerifyOptions{
		LookupTXT: verify.LookupTXT(tb.res),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		if v.Err != nil {
			t.Fatalf("signature d=%s does not verify: %v", v.Domain, v.Err)
		}
		out = append(out, v.Domain)
	}
	return out
}

func rawMessage(from, extraHeaders, body string) string {
	return "From: Alice <" + from + ">\nTo: Bob <bob@remote.test>\nSubject: test\nDate: Wed, 25 Nov 2026 10:00:00 +0000\nMessage-ID: <1@example.test>\n" + extraHeaders + "\n" + body
}

// corpus covers what breaks naive signers.
var corpus = []struct{ name, raw string }{
	{"plain", rawMessage("alice@example.test", "", "Hello.\n")},
	{"empty body", rawMessage("alice@example.test", "", "")},
	{"no final newline", rawMessage("alice@example.test", "", "no newline at the end")},
	{"trailing blank lines and spaces", rawMessage("alice@example.test", "", "line with trailing spaces   \t\n\n\n\n")},
	{"8bit", rawMessage("alice@example.test", "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n", "Grüße aus Köln, ½ € — ☃\n")},
	{"long line", rawMessage("alice@example.test", "", strings.Repeat("x", 3000)+"\nshort\n")},
	{"folded and repeated headers", rawMessage("alice@example.test",
		"Received: from a by b;\n\tWed, 25 Nov 2026 10:00:00 +0000\nReceived: from c by d; Wed, 25 Nov 2026 09:00:00 +0000\nX-Folded: first part\n  second part\n\tthird part\nCc: one@remote.test,\n two@remote.test\nReferences: <a@x>\n <b@x>\nSubject:no space after colon\n",
		"body\n")},
	{"multipart", rawMessage("alice@example.test",
		"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b1\"\n",
		"--b1\nContent-Type: text/plain; charset=utf-8\n\nplain\n--b1\nContent-Type: text/html\n\n<p>html</p>\n--b1--\n")},
	{"display name with encoded word", "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.test>\nTo: x@remote.test\nSubject: hi\n\nbody\n"},
	{"broken display name", "From: \"Unclosed <alice@example.test>\nTo: x@remote.test\nSubject: hi\n\nbody\n"},
	{"dual keys", rawMessage("bob@dual.test", "", "two signatures\n")},
}

func TestSignCorpus(t *testing.T) {
	tb := newTestbed(t, nil)
	for _, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			headers, body := mtaclient.Split([]byte(c.raw))
			r := tb.send(t, &mtaclient.Message{ClientIP: "10.1.2.3", From: "alice@example.test", Headers: headers, Body: strings.NewReader(string(body))})
			if !r.Accepted() {
				t.Fatalf("not accepted: stage %s %v", r.Stage, r.Action)
			}
			domains := tb.verify(t, mtaclient.Render(r.Headers, body))
			want := 1
			if strings.Contains(c.raw, "dual.test") {
				want = 2
			}
			if len(domains) != want {
				t.Fatalf("%d signatures, want %d", len(domains), want)
			}
		})
	}
}

// TestBareLFBody: a body with bare LF line ends (an MTA that does not
// convert them) is signed as the CRLF text the receiver will see.
func TestBareLFBody(t *testing.T) {
	tb := newTestbed(t, nil)
	headers, _ := mtaclient.Split([]byte(rawMessage("alice@example.test", "", "")))
	lf := "line one\nline two\r\nline three\n\n"
	r := tb.send(t, &mtaclient.Message{ClientIP: "127.0.0.1", From: "a@example.test", Headers: headers, Body: strings.NewReader(lf)})
	if !r.Accepted() {
		t.Fatal("not accepted")
	}
	tb.verify(t, mtaclient.Render(r.Headers, mtaclient.ToCRLF([]byte(lf))))
}

func TestTrustDecisions(t *testing.T) {
	tb := newTestbed(t, nil)
	tests := []struct {
		name, ip, auth, raw string
		signed              bool
		logReason           string
	}{
		{"internal network", "10.9.9.9", "", rawMessage("a@example.test", "", "x\n"), true, ""},
		{"loopback", "127.0.0.1", "", rawMessage("a@example.test", "", "x\n"), true, ""},
		{"IPv6 loopback", "::1", "", rawMessage("a@example.test", "", "x\n"), true, ""},
		{"authenticated outsider", "198.51.100.7", "alice", rawMessage("a@example.test", "", "x\n"), true, ""},
		{"outsider", "198.51.100.7", "", rawMessage("a@example.test", "", "x\n"), false, "untrusted client"},
		{"domain without key", "10.9.9.9", "", rawMessage("a@nokey.test", "", "x\n"), false, "no key for nokey.test"},
		{"two From headers", "10.9.9.9", "", "From: a@example.test\nFrom: b@example.test\nSubject: x\n\nx\n", false, "2 From headers"},
		{"two addresses", "10.9.9.9", "", "From: a@example.test, b@example.test\nSubject: x\n\nx\n", false, "From has 2 addresses"},
		{"no From", "10.9.9.9", "", "Subject: x\n\nx\n", false, "no From header"},
		// Issue 12: an invalid author domain is not signed, and the log
		// line says why without repeating a 40 KB value.
		{"path as From domain", "10.9.9.9", "", "From: <a@../planted/x>\nSubject: x\n\nx\n", false, `From domain \"../planted/x\" is not a valid domain name`},
		{"40 KB From domain", "10.9.9.9", "", "From: <a@" + strings.Repeat("a.", 20000) + "test>\nSubject: x\n\nx\n", false, "is 40004 octets long (at most 253)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			headers, body := mtaclient.Split([]byte(tc.raw))
			qid := strings.ReplaceAll(tc.name, " ", "-")
			r := tb.send(t, &mtaclient.Message{ClientIP: tc.ip, AuthUser: tc.auth, From: "a@example.test", QueueID: qid, Headers: headers, Body: strings.NewReader(string(body))})
			if !r.Accepted() {
				t.Fatalf("not accepted: %v", r.Action)
			}
			signed := false
			for _, h := range r.Headers {
				signed = signed || h.Name == "DKIM-Signature"
			}
			if signed != tc.signed {
				t.Fatalf("signed = %v, want %v", signed, tc.signed)
			}
			if signed {
				tb.verify(t, mtaclient.Render(r.Headers, body))
			} else if !strings.Contains(tb.logs.String(), "qid="+qid) || !strings.Contains(tb.logs.String(), tc.logReason) {
				t.Fatalf("log does not give the reason %q:\n%.3000s", tc.logReason, tb.logs.String())
			}
			for _, line := range strings.Split(tb.logs.String(), "\n") {
				if strings.Contains(line, "qid="+qid+" ") && len(line) > 1000 {
					t.Fatalf("log line of %d bytes: %.300s", len(line), line)
				}
			}
		})
	}
}

func TestOversignedHeaderAddedLaterBreaksSignature(t *testing.T) {
	tb := newTestbed(t, nil)
	headers, body := mtaclient.Split([]byte(rawMessage("alice@example.test", "", "x\n")))
	r := tb.send(t, &mtaclient.Message{ClientIP: "127.0.0.1", From: "a@example.test", Headers: headers, Body: strings.NewReader(string(body))})
	tb.verify(t, mtaclient.Render(r.Headers, body)) // as sent: it verifies
	for _, added := range []mtaclient.Header{{Name: "Subject", Value: " injected"}, {Name: "Reply-To", Value: " thief@evil.test"}} {
		tampered := append(slices.Clone(r.Headers), added)
		vs, err := dkim.VerifyWithOptions(strings.NewReader(string(mtaclient.Render(tampered, body))), &dkim.VerifyOptions{LookupTXT: verify.LookupTXT(tb.res)})
		if err != nil || len(vs) != 1 {
			t.Fatalf("%s: %d verifications, %v", added.Name, len(vs), err)
		}
		if vs[0].Err == nil || dkim.IsTempFail(vs[0].Err) {
			t.Fatalf("%s added later: %v, want the signature to fail", added.Name, vs[0].Err)
		}
	}
}

func TestAuthResultsForInbound(t *testing.T) {
	cfg := &policy.Config{Mode: policy.Enforce, Budget: time.Second, MaxPTRNames: 10, Checks: map[policy.Check]policy.CheckConfig{
		policy.PTR: {Enabled: true, Rules: map[policy.Outcome]policy.Rule{policy.NoRecord: {Action: policy.Log}, policy.NoMatch: {Action: policy.Log}, policy.TempError: {Action: policy.Tempfail}}},
	}}
	tb := newTestbed(t, cfg)
	tb.dns.MustAdd("7.100.51.198.in-addr.arpa. 300 IN PTR mail.remote.test.", "mail.remote.test. 300 IN A 198.51.100.7")
	// Forged headers with our authserv-id in every spelling RFC 8601 §2.2
	// allows (case, quoted-string, quoted-pair, comments and folding before
	// it) go; the ones of other servers stay.
	raw := "From: x@remote.test\nAuthentication-Results: other.test; spf=pass\nAuthentication-Results: MX.example.test; dkim=pass (forged)\nSubject: hi\nAuthentication-Results: mx.example.test (comment); iprev=pass\n" +
		"Authentication-Results: \"mx.example.test\"; dkim=pass\n" +
		"Authentication-Results: \"mx.ex\\ample.TEST\"; dmarc=pass\n" +
		"Authentication-Results: (a (nested) comment)\n\t mx.example.test; spf=pass\n" +
		"Authentication-Results: \"mx.example.test.other\"; spf=pass\n" +
		"Authentication-Results: (mx.example.test) other2.test; spf=pass\n\nbody\n"
	headers, body := mtaclient.Split([]byte(raw))
	r := tb.send(t, &mtaclient.Message{ClientIP: "198.51.100.7", HELO: "mail.remote.test", From: "x@remote.test", Headers: headers, Body: strings.NewReader(string(body))})
	if !r.Accepted() {
		t.Fatalf("not accepted: %v", r.Action)
	}
	var ars []string
	for _, h := range r.Headers {
		if h.Name == "Authentication-Results" {
			ars = append(ars, strings.Join(strings.Fields(h.Value), " "))
		}
	}
	want := []string{"mx.example.test; iprev=pass policy.iprev=198.51.100.7", "other.test; spf=pass", `"mx.example.test.other"; spf=pass`, "(mx.example.test) other2.test; spf=pass"}
	if strings.Join(ars, "|") != strings.Join(want, "|") {
		t.Fatalf("Authentication-Results: %q, want %q", ars, want)
	}
	// Ours goes to the very top: index 0, which Postfix puts above the
	// Received header of this hop (RFC 8601 §5).
	for _, m := range r.Mods {
		if m.Type == gomilter.ActionInsertHeader && m.HeaderName == "Authentication-Results" && m.HeaderIndex != 0 {
			t.Errorf("Authentication-Results inserted at index %d, want 0", m.HeaderIndex)
		}
	}
}

// TestInboundLogNamesFromDomain: the log line of an inbound message names
// the From domain DMARC evaluated, the one its Authentication-Results
// gives as header.from (it logged from_domain="" before).
func TestInboundLogNamesFromDomain(t *testing.T) {
	withVerify := func(env *Env, res *resolver.Resolver) {
		env.Verify = &Verification{Config: verify.Config{Resolver: res, Budget: time.Second}}
	}
	tb := newTestbedLimits(t, nil, Limits{ReadTimeout: time.Minute}, withVerify)
	tb.dns.MustAdd(`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=none"`)
	for _, tc := range []struct{ from, domain, dmarc string }{
		{"Alice <alice@example.test>", "example.test", "dmarc=fail"},
		{"bob@Sub.Remote.TEST", "sub.remote.test", "dmarc=none"},
	} {
		raw := "From: " + tc.from + "\nTo: x@example.test\nSubject: hi\nMessage-ID: <" + tc.domain + "@x>\n\nbody\n"
		headers, body := mtaclient.Split([]byte(raw))
		r := tb.send(t, &mtaclient.Message{ClientIP: "198.51.100.7", HELO: "mail.remote.test", From: "x@remote.test", Headers: headers, Body: strings.NewReader(string(body))})
		if !r.Accepted() {
			t.Fatalf("%s: not accepted: %v", tc.from, r.Action)
		}
		ar := ""
		for _, h := range r.Headers {
			if h.Name == "Authentication-Results" {
				ar = strings.Join(strings.Fields(h.Value), " ")
			}
		}
		if !strings.Contains(ar, tc.dmarc) || !strings.Contains(ar, "header.from="+tc.domain) {
			t.Errorf("%s: Authentication-Results %q, want %s header.from=%s", tc.from, ar, tc.dmarc, tc.domain)
		}
		var line string
		for _, l := range strings.Split(tb.logs.String(), "\n") {
			if strings.Contains(l, "msg=message") && strings.Contains(l, "dmarc="+strings.TrimPrefix(tc.dmarc, "dmarc=")) {
				line = l
			}
		}
		if !strings.Contains(line, "from_domain="+tc.domain+" ") {
			t.Errorf("%s: log line %q, want from_domain=%s", tc.from, line, tc.domain)
		}
	}
}

func TestScreenRepliesAtMail(t *testing.T) {
	cfg := &policy.Config{Mode: policy.Enforce, Budget: time.Second, MaxPTRNames: 10, Checks: map[policy.Check]policy.CheckConfig{
		policy.PTR: {Enabled: true, Rules: map[policy.Outcome]policy.Rule{policy.NoRecord: {Action: policy.Reject}, policy.TempError: {Action: policy.Tempfail}}},
	}}
	tb := newTestbed(t, cfg)
	r := tb.send(t, &mtaclient.Message{ClientIP: "198.51.100.99", HELO: "x.remote.test", From: "x@remote.test"})
	if r.Stage != "mail" || r.Action.Type != gomilter.ActionRejectWithCode || r.Action.SMTPCode != 550 || !strings.HasPrefix(r.Action.SMTPReply, "550 5.7.25 ") {
		t.Fatalf("got stage %q %+v", r.Stage, r.Action)
	}
	// Authenticated clients are not screened, internal ones neither.
	for _, m := range []*mtaclient.Message{
		{ClientIP: "198.51.100.99", AuthUser: "alice", From: "x@example.test"},
		{ClientIP: "10.0.0.5", From: "x@example.test"},
	} {
		if r := tb.send(t, m); !r.Accepted() {
			t.Fatalf("%s: stage %q %+v", m.ClientIP, r.Stage, r.Action)
		}
	}
}

// TestPanicIsContained: a panic in a callback tempfails that message, and
// the daemon goes on serving.
func TestPanicIsContained(t *testing.T) {
	tb := newTestbed(t, nil)
	good := tb.srv.Env()
	broken := *good
	broken.Signer = nil // Connect dereferences it
	tb.srv.SetEnv(&broken)
	r := tb.send(t, &mtaclient.Message{ClientIP: "10.0.0.1", From: "a@example.test"})
	if r.Accepted() || r.Action.SMTPCode != 451 {
		t.Fatalf("want 451 after a panic, got stage %q %+v", r.Stage, r.Action)
	}
	if !strings.Contains(tb.logs.String(), "panic in milter callback") {
		t.Fatal("panic not logged")
	}
	tb.srv.SetEnv(good)
	headers, body := mtaclient.Split([]byte(rawMessage("alice@example.test", "", "x\n")))
	if r := tb.send(t, &mtaclient.Message{ClientIP: "10.0.0.1", From: "a@example.test", Headers: headers, Body: strings.NewReader(string(body))}); !r.Accepted() {
		t.Fatal("daemon does not serve after a panic")
	}
}

// TestBadPacketsDoNotKillTheDaemon: a zero-length packet panics inside
// go-milter's own goroutine; the guard must close the connection first.
func TestBadPacketsDoNotKillTheDaemon(t *testing.T) {
	tb := newTestbed(t, nil)
	for _, pkt := range [][]byte{{0, 0, 0, 0}, {0xff, 0xff, 0xff, 0xff, 'O'}, {0, 0, 0}} {
		c, err := net.Dial("tcp", tb.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(pkt)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	headers, body := mtaclient.Split([]byte(rawMessage("alice@example.test", "", "x\n")))
	if r := tb.send(t, &mtaclient.Message{ClientIP: "10.0.0.1", From: "a@example.test", Headers: headers, Body: strings.NewReader(string(body))}); !r.Accepted() {
		t.Fatal("daemon does not serve after bad packets")
	}
}

// TestMaxSessions: beyond limits.max_sessions new sessions are tempfailed,
// never dropped, and the others keep working.
func TestMaxSessions(t *testing.T) {
	tb := newTestbedLimits(t, nil, Limits{ReadTimeout: time.Minute, MaxSessions: 1})
	c := mtaclient.NewClient("tcp", tb.addr)
	held, err := c.Session(gomilter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := held.Conn("[10.0.0.9]", gomilter.FamilyInet, 1, "10.0.0.9"); err != nil {
		t.Fatal(err)
	}
	r := tb.send(t, &mtaclient.Message{ClientIP: "10.0.0.1", From: "a@example.test"})
	if r.Accepted() || r.Action.SMTPCode != 451 || !strings.Contains(r.Action.SMTPReply, "4.3.2") {
		t.Fatalf("over the limit: stage %q %+v", r.Stage, r.Action)
	}
	held.Close()
	deadline := time.Now().Add(2 * time.Second)
	for tb.srv.Sessions() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r := tb.send(t, &mtaclient.Message{ClientIP: "10.0.0.1", From: "a@example.test"}); !r.Accepted() {
		t.Fatalf("after the held session ended: %+v", r.Action)
	}
}

// TestNULInHeaderValue: a NUL inside a header value (Postfix cannot send
// one, a client on the socket can) gets a reply at end of message and a
// log line, for signed and for inbound mail, and the next message is
// served as usual; before, go-milter dropped the connection without a
// word.
func TestNULInHeaderValue(t *testing.T) {
	tb := newTestbed(t, nil)
	for _, tc := range []struct{ name, ip, auth string }{
		{"trusted", "127.0.0.1", ""},
		{"inbound", "198.51.100.7", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			headers := []mtaclient.Header{
				{Name: "From", Value: " a@example.test"},
				{Name: "Subject", Value: " bad\x00value\x00twice"},
				{Name: "To", Value: " b@example.test"},
			}
			r := tb.send(t, &mtaclient.Message{ClientIP: tc.ip, From: "a@example.test", QueueID: "NUL" + tc.name, Headers: headers, Body: strings.NewReader("x\r\n")})
			if r.Action == nil || r.Action.Type != gomilter.ActionRejectWithCode || r.Action.SMTPCode != 550 || !strings.Contains(r.Action.SMTPReply, "5.6.0 Message header contains a NUL character") {
				t.Fatalf("stage %q action %+v, want 550 5.6.0 at end of message", r.Stage, r.Action)
			}
			if !strings.Contains(tb.logs.String(), "qid=NUL"+tc.name) || !strings.Contains(tb.logs.String(), `NUL byte in the value of header`) {
				t.Fatalf("no log line:\n%s", tb.logs.String())
			}
			// A clean message: served as usual.
			headers[1].Value = " fine"
			if r := tb.send(t, &mtaclient.Message{ClientIP: tc.ip, From: "a@example.test", Headers: headers, Body: strings.NewReader("x\r\n")}); !r.Accepted() {
				t.Fatalf("clean message after: stage %q %+v", r.Stage, r.Action)
			}
		})
	}
}

// releaseGuard records the ReleaseReply calls; a recipient starting with
// <vouch-release+ is a release reply.
type releaseGuard struct {
	mu    sync.Mutex
	calls []string
}

func (g *releaseGuard) CheckSender(context.Context, string, netip.Addr) *smtpreply.Reply { return nil }
func (g *releaseGuard) Accepted(context.Context, string, netip.Addr, []string)           {}
func (g *releaseGuard) ReleaseReply(_ context.Context, rcpts []string, sender string, _ netip.Addr, trustedBy string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, sender+" "+trustedBy)
	return strings.HasPrefix(rcpts[0], "<vouch-release+")
}

// TestReleaseReplyDiscarded: the milter asks the account guard about every
// message, says how the client is trusted, and discards a release reply.
func TestReleaseReplyDiscarded(t *testing.T) {
	tb := newTestbed(t, nil)
	g := &releaseGuard{}
	env := *tb.srv.Env()
	env.Accounts = g
	tb.srv.SetEnv(&env)
	headers, body := mtaclient.Split([]byte(rawMessage("pm@example.test", "", "yes\n")))
	for _, tc := range []struct {
		ip, auth, rcpt, trusted string
		discard                 bool
	}{
		{"192.0.2.1", "pm@example.test", "<vouch-release+abc@example.test>", "smtp auth pm@example.test", true},
		{"10.0.0.5", "", "<vouch-release+abc@example.test>", "internal host 10.0.0.0/8", true},
		{"192.0.2.1", "", "<vouch-release+abc@example.test>", "", true},
		{"192.0.2.1", "pm@example.test", "<bob@remote.test>", "smtp auth pm@example.test", false},
	} {
		g.calls = nil
		r := tb.send(t, &mtaclient.Message{ClientIP: tc.ip, From: "pm@example.test", AuthUser: tc.auth, Rcpts: []string{tc.rcpt},
			Headers: headers, Body: strings.NewReader(string(body))})
		discarded := r.Action != nil && r.Action.Type == gomilter.ActionDiscard
		if discarded != tc.discard || len(g.calls) != 1 || g.calls[0] != "pm@example.test "+tc.trusted {
			t.Errorf("%+v: discarded %v, calls %q", tc, discarded, g.calls)
		}
	}
}
