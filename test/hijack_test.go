package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vouch/internal/mtaclient"
	"vouch/internal/testutil"

	gomilter "github.com/d--j/go-milter"
)

// Account hijack detection ([hijack], internal/hijack) end to end: the
// vouch binary, a private redis-server, and Postfix with SMTP AUTH.

// hijackSection is a [hijack] section; every key is spelled out, as the
// README documents them.
func hijackSection(dir, name, action, backend, redisURL, notifySMTP string, messages int) string {
	return fmt.Sprintf(`
[hijack]
enabled = true
messages = %d
recipients = 100
window = "30m"
action = %q
exempt_file = ""
postmaster = "postmaster@example.test"
notify_smtp = %q
notify_from = "vouch@localhost"
state_file = %q
admin_socket = %q
backend = %q
redis_url = %q
redis_fail_open = true
`, messages, action, notifySMTP, filepath.Join(dir, name+"-frozen.json"), filepath.Join(dir, name+".sock"), backend, redisURL)
}

// requireHijackWiring: `vouch serve -check` accepts the [hijack] section
// the tests use.
func requireHijackWiring(t testing.TB, dir string) {
	t.Helper()
	path := filepath.Join(dir, "hijack-check.toml")
	write(t, path, "[screen]\nenabled = false\n"+hijackSection(dir, "check", "tempfail", "memory", "redis://127.0.0.1:6379/0", "127.0.0.1:25", 5))
	out, err := exec.Command(vouchBin, "serve", "-check", "-config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("vouch serve -check rejects the [hijack] section: %v\n%s", err, out)
	}
}

// sendAuth runs one message through a vouch instance as Postfix would for
// an SMTP-authenticated client (macros {auth_type} and {auth_authen}).
func sendAuth(t testing.TB, v *vouch, login, marker string, rcpts int) *mtaclient.Result {
	t.Helper()
	headers, body := mtaclient.Split([]byte(message("alice@example.test", marker)))
	to := make([]string, rcpts)
	for i := range to {
		to[i] = fmt.Sprintf("<rcpt%d@local.test>", i)
	}
	r, err := mtaclient.Send(mtaclient.NewClient("tcp", v.addr()), &mtaclient.Message{
		ClientIP: "203.0.113.9", ClientName: "dialup.example.net", HELO: "laptop",
		From: "<alice@example.test>", Rcpts: to, AuthUser: login, Headers: headers, Body: strings.NewReader(string(body)),
	})
	if err != nil {
		t.Fatalf("%s via %s: %v", marker, v.addr(), err)
	}
	return r
}

func refusal(r *mtaclient.Result) string {
	if r.Accepted() {
		return "accepted"
	}
	if r.Action == nil {
		return r.Stage + ": no action"
	}
	return fmt.Sprintf("%s: %d %s", r.Stage, r.Action.SMTPCode, r.Action.SMTPReply)
}

// accountsCmd runs `vouch accounts ARGS -socket SOCK`.
func accountsCmd(t testing.TB, sock string, args ...string) string {
	t.Helper()
	out, err := exec.Command(vouchBin, append(append([]string{"accounts"}, args...), "-socket", sock)...).CombinedOutput()
	if err != nil {
		t.Fatalf("vouch accounts %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestHijackSharedLimit: two vouch instances share one Redis; a login's
// 6th message with messages = 5 is refused whichever instance gets it.
func TestHijackSharedLimit(t *testing.T) {
	dir := t.TempDir()
	requireHijackWiring(t, dir)
	redis := testutil.StartRedis(t)
	sink := testutil.NewSMTPServer(t)
	const limit = 5
	base := "authserv_id = \"mx.local.test\"\n[screen]\nenabled = false\n"

	t.Run("tempfail", func(t *testing.T) {
		a := startVouch(t, dir, base+hijackSection(dir, "ta", "tempfail", "redis", redis.URL(), sink.Addr, limit))
		b := startVouch(t, dir, base+hijackSection(dir, "tb", "tempfail", "redis", redis.URL(), sink.Addr, limit))
		for i := 0; i < limit; i++ {
			v := []*vouch{a, b}[i%2]
			if r := sendAuth(t, v, "Alice@example.test", fmt.Sprintf("shared-%d", i), 2); !r.Accepted() {
				t.Fatalf("message %d: %s", i+1, refusal(r))
			}
		}
		for name, v := range map[string]*vouch{"a": a, "b": b} {
			r := sendAuth(t, v, "alice@example.test", "shared-over-"+name, 1)
			if r.Stage != "mail" || r.Action.SMTPCode != 452 || !strings.HasPrefix(r.Action.SMTPReply, "452 4.7.1 ") {
				t.Fatalf("instance %s, message %d: %s", name, limit+1, refusal(r))
			}
		}
		// Other logins and unauthenticated mail are not affected.
		if r := sendAuth(t, b, "bob@example.test", "bob-1", 1); !r.Accepted() {
			t.Fatalf("bob: %s", refusal(r))
		}
		if r := sendAuth(t, a, "", "anon-1", 1); !r.Accepted() {
			t.Fatalf("unauthenticated: %s", refusal(r))
		}
		out := accountsCmd(t, filepath.Join(dir, "ta.sock"), "list")
		if !strings.Contains(out, "alice@example.test  5/5") || !strings.Contains(out, "10/100") || !strings.Contains(out, "203.0.113.9") {
			t.Fatalf("vouch accounts list:\n%s", out)
		}
		// A release clears the shared counters.
		accountsCmd(t, filepath.Join(dir, "tb.sock"), "release", "alice@example.test")
		if r := sendAuth(t, a, "alice@example.test", "after-release", 1); !r.Accepted() {
			t.Fatalf("after release: %s", refusal(r))
		}
	})

	t.Run("freeze", func(t *testing.T) {
		a := startVouch(t, dir, base+hijackSection(dir, "fa", "freeze", "redis", redis.URL(), sink.Addr, limit))
		b := startVouch(t, dir, base+hijackSection(dir, "fb", "freeze", "redis", redis.URL(), sink.Addr, limit))
		for i := 0; i < limit; i++ {
			if r := sendAuth(t, []*vouch{a, b}[i%2], "mallory@example.test", fmt.Sprintf("freeze-%d", i), 1); !r.Accepted() {
				t.Fatalf("message %d: %s", i+1, refusal(r))
			}
		}
		for i := 0; i < 4; i++ {
			r := sendAuth(t, []*vouch{a, b}[i%2], "mallory@example.test", fmt.Sprintf("frozen-%d", i), 1)
			if r.Stage != "mail" || r.Action.SMTPCode != 550 || !strings.HasPrefix(r.Action.SMTPReply, "550 5.7.1 ") {
				t.Fatalf("attempt %d after the limit: %s", i+1, refusal(r))
			}
		}
		mails := sink.Wait(t, 1)
		time.Sleep(300 * time.Millisecond)
		if n := len(sink.Messages()); n != 1 {
			t.Fatalf("%d notifications for one freeze across two instances", n)
		}
		if !strings.Contains(mails[0].Data, "vouch accounts release mallory@example.test") || !strings.Contains(mails[0].Data, "203.0.113.9") {
			t.Fatalf("notification:\n%s", mails[0].Data)
		}
		out := accountsCmd(t, filepath.Join(dir, "fb.sock"), "list")
		if !strings.Contains(out, "mallory@example.test") || !strings.Contains(out, "FROZEN") {
			t.Fatalf("vouch accounts list:\n%s", out)
		}
		// Released on one instance, released on both.
		if out := accountsCmd(t, filepath.Join(dir, "fa.sock"), "release", "mallory@example.test"); !strings.Contains(out, "released") {
			t.Fatalf("release: %s", out)
		}
		for name, v := range map[string]*vouch{"a": a, "b": b} {
			if r := sendAuth(t, v, "mallory@example.test", "released-"+name, 1); !r.Accepted() {
				t.Fatalf("instance %s after release: %s", name, refusal(r))
			}
		}
	})
}

// TestHijackBehindPostfixAuth: a real Postfix with Cyrus SASL (sasldb)
// authenticates the client; vouch sees the login in {auth_authen} and
// refuses the message over the limit at MAIL FROM, with its reply passed
// through to the client.
func TestHijackBehindPostfixAuth(t *testing.T) {
	dir := t.TempDir()
	requireHijackWiring(t, dir)
	requirePostfix(t)
	requireSASL(t)
	v := startVouch(t, dir, "[screen]\nenabled = false\n"+hijackSection(dir, "pf", "tempfail", "memory", "redis://127.0.0.1:6379/0", "127.0.0.1:1", 2))
	port := freePort(t)
	pf := startPostfix(t, []listener{{port, v.milter()}}, "", nil)
	enableSASL(t, pf, "alice", "example.test", "s3cret")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 1; i <= 2; i++ {
		marker := fmt.Sprintf("auth-%d", i)
		s := deliverAuth(t, addr, "alice@example.test", "s3cret", "alice@example.test", "bob@local.test", message("alice@example.test", marker))
		if s.Stage != "" {
			t.Fatalf("message %d: %+v\n%s", i, s, pf.log())
		}
		pf.waitMail(marker)
	}
	s := deliverAuth(t, addr, "alice@example.test", "s3cret", "alice@example.test", "bob@local.test", message("alice@example.test", "auth-3"))
	if s.Stage != "MAIL" || s.Code != 452 || !strings.Contains(s.Reply, "4.7.1") {
		t.Fatalf("third message: %+v", s)
	}
	// vouch's log reaches the test through a pipe: wait for the line.
	waitLog(t, v, "login=alice@example.test")
	// Another account, and a wrong password that never reaches vouch.
	if s := deliverAuth(t, addr, "alice@example.test", "wrong", "alice@example.test", "bob@local.test", "x"); s.Stage != "AUTH" || s.Code != 535 {
		t.Fatalf("wrong password: %+v", s)
	}
	// Unauthenticated mail from the same (trusted) client is not limited.
	if s := deliver(t, addr, nil, "alice@example.test", "bob@local.test", message("alice@example.test", "noauth-1")); s.Stage != "" {
		t.Fatalf("unauthenticated: %+v", s)
	}
}

// requireSASL checks for saslpasswd2 (sasl2-bin); the PLAIN/LOGIN and
// sasldb plugins come with libsasl2-modules and libsasl2-modules-db.
func requireSASL(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("saslpasswd2"); err != nil {
		if os.Getenv("VOUCH_SKIP_E2E") != "" {
			t.Skip("saslpasswd2 not installed and VOUCH_SKIP_E2E set")
		}
		t.Fatal("saslpasswd2 is not installed: run .ci/run (or apt-get install sasl2-bin libsasl2-modules) or set VOUCH_SKIP_E2E=1")
	}
}

// enableSASL turns on SMTP AUTH (Cyrus SASL, auxprop sasldb, PLAIN and
// LOGIN) in a test Postfix with one user, login USER@REALM. Debian's
// Postfix reads $config_directory/sasl/smtpd.conf (its patch puts that
// first in the search path, cyrus_sasl_config_path or not); upstream
// Postfix reads cyrus_sasl_config_path, set to the same directory. smtpd
// reads the file when it starts, so Postfix is reloaded afterwards.
func enableSASL(t testing.TB, pf *postfix, user, realm, password string) {
	t.Helper()
	dir := filepath.Join(pf.dir, "sasl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "sasldb2")
	write(t, filepath.Join(dir, "smtpd.conf"), fmt.Sprintf("pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: %s\n", db))
	cmd := exec.Command("saslpasswd2", "-p", "-f", db, "-c", "-u", realm, user)
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("saslpasswd2: %v\n%s", err, out)
	}
	// smtpd opens the database as the postfix user (no chroot in tests).
	os.Chmod(db, 0o644)
	pf.set("smtpd_sasl_auth_enable", "yes", "smtpd_sasl_type", "cyrus", "smtpd_sasl_path", "smtpd", "cyrus_sasl_config_path", dir)
}

// deliverAuth is deliver with AUTH PLAIN after EHLO.
func deliverAuth(t testing.TB, addr, login, password, from, to, msg string) session {
	t.Helper()
	s := dialSMTP(t, addr)
	defer s.close()
	if code, text := s.cmd("EHLO laptop.example.net"); code != 250 {
		t.Fatalf("EHLO: %d %s", code, text)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + login + "\x00" + password))
	if code, text := s.cmd("AUTH PLAIN " + cred); code != 235 {
		return session{"AUTH", code, text, code != 0}
	}
	for _, st := range []struct{ stage, line string }{{"MAIL", "MAIL FROM:<" + from + ">"}, {"RCPT", "RCPT TO:<" + to + ">"}, {"DATA", "DATA"}} {
		if code, text := s.cmd(st.line); code/100 != 2 && code != 354 {
			return session{st.stage, code, text, true}
		}
	}
	if code, text := s.data(msg); code/100 != 2 {
		return session{"END", code, text, true}
	}
	return session{"", 250, "", true}
}

// TestHijackReleaseReply: two vouch binaries share Redis; mallory is
// frozen, the notification carries a release address; a reply from an
// unauthenticated outside client is discarded and releases nothing; the
// postmaster's authenticated reply through the other instance is
// discarded, releases mallory on both and is confirmed by mail.
func TestHijackReleaseReply(t *testing.T) {
	dir := t.TempDir()
	requireHijackWiring(t, dir)
	redis := testutil.StartRedis(t)
	sink := testutil.NewSMTPServer(t)
	release := fmt.Sprintf("release_address = \"vouch-release@local.test\"\nrelease_token_ttl = \"1h\"\nrelease_key_file = %q\n",
		filepath.Join(dir, "release.key"))
	base := "authserv_id = \"mx.local.test\"\n[screen]\nenabled = false\n"
	a := startVouch(t, dir, base+hijackSection(dir, "ra", "freeze", "redis", redis.URL(), sink.Addr, 2)+release)
	b := startVouch(t, dir, base+hijackSection(dir, "rb", "freeze", "redis", redis.URL(), sink.Addr, 2)+release)
	for i := 0; i < 3; i++ {
		sendAuth(t, a, "mallory@example.test", fmt.Sprintf("rr-%d", i), 1)
	}
	mail := sink.Wait(t, 1)[0].Data
	_, rest, ok := strings.Cut(mail, "\r\nReply-To: <")
	replyTo, _, _ := strings.Cut(rest, ">")
	if !ok || !strings.HasPrefix(replyTo, "vouch-release+") || !strings.HasSuffix(replyTo, "@local.test") {
		t.Fatalf("notification without release address:\n%s", mail)
	}
	reply := func(v *vouch, login string) *mtaclient.Result {
		headers, body := mtaclient.Split([]byte(message("postmaster@example.test", "release-reply")))
		r, err := mtaclient.Send(mtaclient.NewClient("tcp", v.addr()), &mtaclient.Message{
			ClientIP: "198.51.100.20", HELO: "pm-laptop", From: "<postmaster@example.test>", Rcpts: []string{"<" + replyTo + ">"},
			AuthUser: login, Headers: headers, Body: strings.NewReader(string(body)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := reply(b, ""); r.Action == nil || r.Action.Type != gomilter.ActionDiscard {
		t.Fatalf("untrusted reply: %s", refusal(r))
	}
	if r := sendAuth(t, a, "mallory@example.test", "still-frozen", 1); r.Accepted() {
		t.Fatal("released by an unauthenticated reply")
	}
	if r := reply(b, "postmaster@example.test"); r.Action == nil || r.Action.Type != gomilter.ActionDiscard {
		t.Fatalf("postmaster's reply: %s", refusal(r))
	}
	for name, v := range map[string]*vouch{"a": a, "b": b} {
		if r := sendAuth(t, v, "mallory@example.test", "released-"+name, 1); !r.Accepted() {
			t.Fatalf("instance %s after the release reply: %s", name, refusal(r))
		}
	}
	if m := sink.Wait(t, 2)[1].Data; !strings.Contains(m, "Subject: vouch: account mallory@example.test released") {
		t.Fatalf("confirmation:\n%s", m)
	}
	if !strings.Contains(b.logs.String(), "by=\"reply to the freeze notification from postmaster@example.test (smtp auth postmaster@example.test)\"") {
		t.Fatalf("release not logged with who and how:\n%s", b.logs.String())
	}
	if out := accountsCmd(t, filepath.Join(dir, "ra.sock"), "list"); !strings.Contains(out, fmt.Sprintf("backend redis (redis 127.0.0.1:%d)", redis.Port)) {
		t.Fatalf("vouch accounts list does not name the redis node:\n%s", out)
	}
}

// TestHijackReleaseReplyPostfix: the whole loop through a real Postfix with
// SMTP AUTH. alice goes over her limit and is frozen; the notification
// arrives in the postmaster's Maildir through Postfix; the postmaster's
// reply, sent with SMTP AUTH through Postfix, is discarded by vouch and
// releases alice on both instances sharing Redis; the confirmation
// arrives; alice sends again.
func TestHijackReleaseReplyPostfix(t *testing.T) {
	dir := t.TempDir()
	requireHijackWiring(t, dir)
	requirePostfix(t)
	requireSASL(t)
	redis := testutil.StartRedis(t)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	section := func(name string) string {
		s := hijackSection(dir, name, "freeze", "redis", redis.URL(), addr, 2)
		s = strings.Replace(s, `postmaster = "postmaster@example.test"`, `postmaster = "postmaster@local.test"`, 1)
		return s + fmt.Sprintf("release_address = \"vouch-release@local.test\"\nrelease_key_file = %q\n", filepath.Join(dir, "release.key"))
	}
	a := startVouch(t, dir, "[screen]\nenabled = false\n"+section("pa"))
	b := startVouch(t, dir, "[screen]\nenabled = false\n"+section("pb"))
	pf := startPostfix(t, []listener{{port, a.milter()}}, "", nil)
	enableSASL(t, pf, "alice", "example.test", "s3cret")
	enableSASL(t, pf, "postmaster", "local.test", "pm-secret")
	send := func(marker string) session {
		return deliverAuth(t, addr, "alice@example.test", "s3cret", "alice@example.test", "bob@local.test", message("alice@example.test", marker))
	}
	for i := 1; i <= 2; i++ {
		if s := send(fmt.Sprintf("pr-%d", i)); s.Stage != "" {
			t.Fatalf("message %d: %+v\n%s", i, s, pf.log())
		}
	}
	if s := send("pr-3"); s.Stage != "MAIL" || s.Code != 550 {
		t.Fatalf("third message: %+v", s)
	}
	note := string(pf.waitMail("account alice@example.test frozen"))
	_, rest, ok := strings.Cut(note, "\nReply-To: <")
	replyTo, _, _ := strings.Cut(rest, ">")
	if !ok || !strings.HasPrefix(replyTo, "vouch-release+") {
		t.Fatalf("notification without release address:\n%s", note)
	}
	if s := sendAuth(t, b, "alice@example.test", "pr-b-frozen", 1); s.Accepted() {
		t.Fatal("alice not frozen on the second instance")
	}
	reply := "From: postmaster@local.test\r\nTo: " + replyTo + "\r\nSubject: Re: vouch: account alice@example.test frozen\r\n\r\nrelease-reply-marker\r\n"
	if s := deliverAuth(t, addr, "postmaster@local.test", "pm-secret", "postmaster@local.test", replyTo, reply); s.Stage != "" {
		t.Fatalf("postmaster's reply: %+v\n%s", s, pf.log())
	}
	pf.waitMail("account alice@example.test released")
	if s := send("pr-after"); s.Stage != "" {
		t.Fatalf("alice after the release reply: %+v", s)
	}
	pf.waitMail("pr-after")
	if r := sendAuth(t, b, "alice@example.test", "pr-b-after", 1); !r.Accepted() {
		t.Fatalf("second instance after the release reply: %s", refusal(r))
	}
	if !strings.Contains(a.logs.String(), "reply releasing a frozen account") || !strings.Contains(pf.log(), "milter-discard") {
		t.Fatalf("reply not discarded:\nvouch:\n%s\npostfix:\n%s", a.logs.String(), pf.log())
	}
}
