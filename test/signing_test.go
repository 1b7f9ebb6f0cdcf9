package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func message(from, marker string) string {
	return fmt.Sprintf("From: Alice <%s>\nTo: Bob <bob@local.test>\nSubject: %s\nDate: %s\nMessage-ID: <%s@example.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nHallo Bob, Grüße.\n\n-- \n%s\n",
		from, marker, time.Now().Format(time.RFC1123Z), marker, marker)
}

func signatures(msg []byte) int {
	return bytes.Count(msg, []byte("\nDKIM-Signature:")) + map[bool]int{true: 1}[bytes.HasPrefix(msg, []byte("DKIM-Signature:"))]
}

// TestSigningBehindPostfix: OpenDKIM's job, done by vouch under a real
// Postfix. Trusted mail is signed so that go-msgauth and dkimpy accept
// it; relayed and keyless mail passes unsigned; local sendmail
// submissions are signed; with vouch down milter_default_action applies.
func TestSigningBehindPostfix(t *testing.T) {
	dir := t.TempDir()
	z := newZone(t)
	rsaKey := z.genkey(t, dir+"/example", "example.test", "mail", "rsa")
	dualRSA := z.genkey(t, dir+"/dual-rsa", "dual.test", "rsa2026", "rsa")
	dualEd := z.genkey(t, dir+"/dual-ed", "dual.test", "ed2026", "ed25519")
	v := startVouch(t, dir, fmt.Sprintf(`
[dns]
servers = [%q]
timeout = "2s"
[signing]
internal_hosts = ["127.0.0.1", "::1", "10.0.0.0/8"]
[[signing.key]]
domain = "example.test"
selector = "mail"
private_key = %q
[[signing.key]]
domain = "dual.test"
selector = "rsa2026"
private_key = %q
[[signing.key]]
domain = "dual.test"
selector = "ed2026"
private_key = %q
[screen]
enabled = false
`, z.Addr, rsaKey, dualRSA, dualEd))
	smtpPort := freePort(t)
	pf := startPostfix(t, []listener{{smtpPort, v.milter()}}, v.milter(), nil)
	addr := fmt.Sprintf("127.0.0.1:%d", smtpPort)

	t.Run("trusted client is signed", func(t *testing.T) {
		s := deliver(t, addr, nil, "alice@example.test", "bob@local.test", message("alice@example.test", "trusted-1"))
		if s.Stage != "" {
			t.Fatalf("rejected: %+v", s)
		}
		got := pf.waitMail("trusted-1")
		if d := z.verifyAll(t, got); !slices.Equal(d, []string{"example.test"}) {
			t.Fatalf("signatures for %v", d)
		}
	})
	t.Run("relayed from an untrusted client is not signed", func(t *testing.T) {
		s := deliver(t, addr, &client{Addr: "198.51.100.20", Name: "mail.remote.test", HELO: "mail.remote.test"}, "alice@example.test", "bob@local.test", message("alice@example.test", "untrusted-1"))
		if s.Stage != "" {
			t.Fatalf("rejected: %+v", s)
		}
		if got := pf.waitMail("untrusted-1"); signatures(got) != 0 {
			t.Fatalf("untrusted mail was signed:\n%s", got)
		}
	})
	t.Run("internal network client via XCLIENT is signed", func(t *testing.T) {
		deliver(t, addr, &client{Addr: "10.1.2.3", Name: "desk.example.test", HELO: "desk.example.test"}, "alice@example.test", "bob@local.test", message("alice@example.test", "internal-10"))
		z.verifyAll(t, pf.waitMail("internal-10"))
	})
	t.Run("domain without key passes unsigned", func(t *testing.T) {
		deliver(t, addr, nil, "carol@nokey.test", "bob@local.test", message("carol@nokey.test", "nokey-1"))
		if got := pf.waitMail("nokey-1"); signatures(got) != 0 {
			t.Fatalf("signed without a key:\n%s", got)
		}
		if !strings.Contains(v.logs.String(), "no key for nokey.test") {
			t.Fatalf("log does not say why:\n%s", v.logs.String())
		}
	})
	t.Run("RSA and Ed25519 keys both sign", func(t *testing.T) {
		deliver(t, addr, nil, "dave@dual.test", "bob@local.test", message("dave@dual.test", "dual-1"))
		got := pf.waitMail("dual-1")
		if d := z.verifyAll(t, got); len(d) != 2 {
			t.Fatalf("want 2 signatures, got %v", d)
		}
		if !bytes.Contains(got, []byte("a=ed25519-sha256")) {
			t.Fatal("no ed25519 signature")
		}
	})
	t.Run("local sendmail submission is signed", func(t *testing.T) {
		// LF line ends, no Date or Message-ID: Postfix adds them before the
		// milter sees the message.
		pf.sendmail("alice@example.test", "bob@local.test", "From: alice@example.test\nTo: bob@local.test\nSubject: local-1\n\nsubmitted with sendmail\n")
		got := pf.waitMail("local-1")
		if d := z.verifyAll(t, got); !slices.Equal(d, []string{"example.test"}) {
			t.Fatalf("signatures for %v", d)
		}
	})
	t.Run("log line per message with queue id", func(t *testing.T) {
		logs := v.logs.String()
		for _, want := range []string{`msg=message`, `result=signed`, `signatures="d=example.test s=mail a=rsa"`, `from_domain=example.test`} {
			if !strings.Contains(logs, want) {
				t.Fatalf("log lacks %q:\n%s", want, logs)
			}
		}
		if strings.Contains(logs, `qid=""`) {
			t.Fatalf("a message line has no queue id:\n%s", logs)
		}
	})
	t.Run("vouch down: milter_default_action", func(t *testing.T) {
		v.stop()
		s := deliver(t, addr, nil, "alice@example.test", "bob@local.test", message("alice@example.test", "down-accept"))
		if s.Stage != "" {
			t.Fatalf("milter_default_action=accept, but: %+v", s)
		}
		if got := pf.waitMail("down-accept"); signatures(got) != 0 {
			t.Fatal("signed while vouch was down?")
		}
		pf.set("milter_default_action", "tempfail")
		s = deliver(t, addr, nil, "alice@example.test", "bob@local.test", message("alice@example.test", "down-tempfail"))
		if s.Code/100 != 4 {
			t.Fatalf("milter_default_action=tempfail, but: %+v", s)
		}
		v.start()
		s = deliver(t, addr, nil, "alice@example.test", "bob@local.test", message("alice@example.test", "back-up"))
		if s.Stage != "" {
			t.Fatalf("after restart: %+v", s)
		}
		z.verifyAll(t, pf.waitMail("back-up"))
	})
}
