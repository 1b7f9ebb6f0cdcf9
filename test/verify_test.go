package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"vouch/internal/mailtext"
	"vouch/internal/mtaclient"
	"vouch/signer"
)

// signAs signs a message with a key of a remote domain, as that domain's
// own server would.
func signAs(t testing.TB, keyPath, domain, selector, raw string) string {
	t.Helper()
	sg, _, err := signer.New(signer.Config{
		RequireSafeKeys: true,
		Headers:         []string{"From", "To", "Subject", "Date", "Message-ID"},
		Keys:            []signer.InlineKey{{Domain: domain, Selector: selector, PrivateKey: keyPath}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := sg.Lookup("x", domain)
	if err != nil || len(reqs) == 0 {
		t.Fatalf("no key: %v", err)
	}
	hs, body := mtaclient.Split([]byte(raw))
	headers := make([]mailtext.Header, len(hs))
	for i, h := range hs {
		headers[i] = mailtext.Header{Name: h.Name, Value: h.Value}
	}
	m, err := sg.NewMessage(reqs, headers)
	if err != nil {
		t.Fatal(err)
	}
	m.Write(body)
	sigs, err := m.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return "DKIM-Signature:" + strings.ReplaceAll(sigs[0], "\r\n", "\n") + "\n" + raw
}

// TestVerificationBehindPostfix: inbound mail gets one Authentication-
// Results header with dkim, spf, dmarc and iprev; a forged one with our
// authserv-id is removed; a DMARC p=reject domain's forged mail is
// rejected in enforce mode and tempfailed in trial mode.
func TestVerificationBehindPostfix(t *testing.T) {
	dir := t.TempDir()
	z := newZone(t, append(screenZone,
		"sender.test. 300 IN MX 10 mail.good.test.",
		`sender.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.sender.test. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@sender.test"`,
		"lax.test. 300 IN MX 10 mail.good.test.",
		`lax.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.lax.test. 300 IN TXT "v=DMARC1; p=none"`,
	)...)
	key := z.genkey(t, dir, "sender.test", "k1", "rsa")
	common := fmt.Sprintf(`
authserv_id = "mx.local.test"
[dns]
servers = [%q]
timeout = "1s"
[whitelist]
reverse = %q
`, z.Addr, dir+"/none.dat")
	trial := startVouch(t, dir, common+"[verify]\ndmarc_reject = \"reject\"\n")
	enforce := startVouch(t, dir, common+"[screen]\nmode = \"enforce\"\n[verify]\ndmarc_reject = \"reject\"\n")
	trialPort, enforcePort := freePort(t), freePort(t)
	pf := startPostfix(t, []listener{{trialPort, trial.milter()}, {enforcePort, enforce.milter()}}, "", nil)
	good := &client{Addr: "192.0.2.10", Name: "mail.good.test", HELO: "mail.good.test"}
	stranger := &client{Addr: "192.0.2.30", HELO: "[192.0.2.30]"}

	t.Run("signed mail from the domain's server", func(t *testing.T) {
		raw := "From: Sam <sam@sender.test>\nTo: bob@local.test\nSubject: verify-pass\nDate: " + time.Now().Format(time.RFC1123Z) + "\nMessage-ID: <vp@sender.test>\nAuthentication-Results: mx.local.test; dkim=pass header.d=bank.test (forged by the sender)\n\nhello\n"
		s := deliver(t, fmt.Sprintf("127.0.0.1:%d", trialPort), good, "sam@sender.test", "bob@local.test", signAs(t, key, "sender.test", "k1", raw))
		if s.Stage != "" {
			t.Fatalf("refused: %+v", s)
		}
		got := unfold(string(pf.waitMail("verify-pass")))
		ars := strings.Count(got, "Authentication-Results: mx.local.test")
		if ars != 1 || strings.Contains(got, "forged by the sender") {
			t.Fatalf("want exactly our Authentication-Results, got %d:\n%s", ars, got)
		}
		// RFC 8601 §5: above the trace header Postfix added for this hop.
		if ar, rcvd := strings.Index(got, "\nAuthentication-Results: mx.local.test"), strings.Index(got, "\nReceived: "); ar < 0 || rcvd < 0 || ar > rcvd {
			t.Fatalf("Authentication-Results is not above this hop's Received header:\n%s", got)
		}
		for _, want := range []string{"dkim=pass header.d=sender.test header.s=k1", "spf=pass smtp.mailfrom=sam@sender.test", "dmarc=pass (p=reject dis=none) header.from=sender.test", "iprev=pass policy.iprev=192.0.2.10"} {
			if !strings.Contains(got, want) {
				t.Errorf("no %q in\n%s", want, got)
			}
		}
	})
	t.Run("forged mail for a p=reject domain", func(t *testing.T) {
		raw := message("ceo@sender.test", "verify-forged")
		for _, tc := range []struct {
			port int
			want string
		}{{trialPort, "450 4.7.1 "}, {enforcePort, "550 5.7.1 "}} {
			s := deliver(t, fmt.Sprintf("127.0.0.1:%d", tc.port), stranger, "ceo@sender.test", "bob@local.test", raw)
			if s.Stage != "END" || !strings.HasPrefix(s.Reply, tc.want) {
				t.Fatalf("port %d: want %q at end of data, got %+v", tc.port, tc.want, s)
			}
		}
	})
	t.Run("p=none domain: delivered with dmarc=fail", func(t *testing.T) {
		s := deliver(t, fmt.Sprintf("127.0.0.1:%d", enforcePort), stranger, "x@lax.test", "bob@local.test", message("x@lax.test", "verify-lax"))
		if s.Stage != "" {
			t.Fatalf("refused: %+v", s)
		}
		got := unfold(string(pf.waitMail("verify-lax")))
		for _, want := range []string{"dkim=none", "spf=fail", "dmarc=fail reason=", "(p=none dis=none) header.from=lax.test", "iprev=fail policy.iprev=192.0.2.30"} {
			if !strings.Contains(got, want) {
				t.Errorf("no %q in\n%s", want, got)
			}
		}
		if !bytes.Contains([]byte(enforce.logs.String()), []byte("dmarc=fail")) {
			t.Errorf("no log line with the results")
		}
	})
}
