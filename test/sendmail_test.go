package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/testutil"
)

// Sendmail cannot be installed next to Postfix (sendmail-bin conflicts
// with it as a package), so the tests extract Debian's packages into a
// private directory and run the binary from there. CI downloads them once:
//
//	mkdir -p /var/cache/vouch-test/sendmail && cd /var/cache/vouch-test/sendmail &&
//	apt-get download sendmail-bin sendmail-cf m4 libwrap0
const defaultSendmailDebs = "/var/cache/vouch-test/sendmail"

// sendmailOversign is the oversign list contrib/sendmail/README.md
// recommends: Sendmail adds a missing Date and Message-Id when it
// delivers, after the milter has signed, so those two must not be
// oversigned (an oversigned name signs its absence).
const sendmailOversign = `["From", "Subject", "To", "Cc", "Reply-To", "Sender", "Content-Type", "MIME-Version"]`

// sendmail is a private Sendmail 8 daemon in the foreground on a
// loopback port, with vouch as its milter, delivering every local
// recipient into a file.
type sendmail struct {
	t      testing.TB
	port   int
	outDir string
	cmd    *exec.Cmd
	done   chan struct{}
	log    string // -X traffic log
}

// requireSendmail extracts the Sendmail packages and returns the root of
// the extracted tree.
func requireSendmail(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the Sendmail test runs Sendmail as root")
	}
	dir := os.Getenv("VOUCH_SENDMAIL_DEBS")
	if dir == "" {
		dir = defaultSendmailDebs
	}
	var debs []string
	for _, name := range []string{"sendmail-bin", "sendmail-cf", "m4", "libwrap0"} {
		found, _ := filepath.Glob(filepath.Join(dir, name+"_*.deb"))
		if len(found) == 0 {
			if os.Getenv("VOUCH_SKIP_E2E") != "" {
				t.Skipf("%s_*.deb not in %s and VOUCH_SKIP_E2E set", name, dir)
			}
			t.Fatalf("%s_*.deb is not in %s: run there `apt-get download sendmail-bin sendmail-cf m4 libwrap0` (or set VOUCH_SENDMAIL_DEBS, or VOUCH_SKIP_E2E=1)", name, dir)
		}
		debs = append(debs, found[len(found)-1])
	}
	root := t.TempDir()
	for _, deb := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
	}
	// The binary is setgid mail; the loader ignores LD_LIBRARY_PATH (for
	// the extracted libwrap) in setgid programs, and root needs no setgid.
	if err := os.Chmod(filepath.Join(root, "usr/libexec/sendmail/sendmail"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// sendmailMC is the .mc: a bare MTA on 127.0.0.1:PORT with vouch as its
// only milter, "local.test" delivered by a script into files. The
// Milter.macros options deliberately leave out i, {client_addr} and
// {auth_authen}: vouch gets them only because Sendmail honours the macro
// lists a milter asks for at option negotiation (milter.c
// milter_getsymlist, Sendmail 8.14 and later).
const sendmailMC = `divert(-1)
divert(0)dnl
include(` + "`" + `@CF@/m4/cf.m4')dnl
VERSIONID(` + "`" + `vouch e2e')dnl
define(` + "`" + `LOCAL_MAILER_PATH', ` + "`" + `@DIR@/deliver.sh')dnl
define(` + "`" + `LOCAL_MAILER_ARGS', ` + "`" + `deliver $u')dnl
OSTYPE(` + "`" + `gnu')dnl
define(` + "`" + `confDOMAIN_NAME', ` + "`" + `mx.local.test')dnl
define(` + "`" + `confDONT_PROBE_INTERFACES', ` + "`" + `True')dnl
define(` + "`" + `confDONT_BLAME_SENDMAIL', ` + "`" + `TrustStickyBit')dnl
define(` + "`" + `QUEUE_DIR', ` + "`" + `@DIR@/queue')dnl
define(` + "`" + `confPID_FILE', ` + "`" + `@DIR@/sendmail.pid')dnl
define(` + "`" + `STATUS_FILE', ` + "`" + `@DIR@/statistics')dnl
define(` + "`" + `ALIAS_FILE', ` + "`" + `@DIR@/aliases')dnl
define(` + "`" + `confFORWARD_PATH', ` + "`" + `')dnl
define(` + "`" + `confHOSTS_FILE', ` + "`" + `@DIR@/hosts')dnl
define(` + "`" + `confSERVICE_SWITCH_FILE', ` + "`" + `@DIR@/service.switch')dnl
define(` + "`" + `confDELIVERY_MODE', ` + "`" + `background')dnl
define(` + "`" + `confMILTER_MACROS_CONNECT', ` + "`" + `j, {daemon_name}')dnl
define(` + "`" + `confMILTER_MACROS_ENVFROM', ` + "`" + `{mail_addr}')dnl
define(` + "`" + `confMILTER_MACROS_EOM', ` + "`" + `{msg_id}')dnl
MODIFY_MAILER_FLAGS(` + "`" + `LOCAL', ` + "`" + `-w9')dnl
FEATURE(` + "`" + `nocanonify')dnl
FEATURE(` + "`" + `accept_unresolvable_domains')dnl
FEATURE(` + "`" + `no_default_msa')dnl
LOCAL_DOMAIN(` + "`" + `local.test')dnl
DAEMON_OPTIONS(` + "`" + `Family=inet, Name=MTA, Port=@PORT@, Addr=127.0.0.1')dnl
INPUT_MAIL_FILTER(` + "`" + `vouch', ` + "`" + `S=inet:@MILTER@@127.0.0.1, F=T, T=S:30s;R:30s;E:5m')dnl
MAILER(` + "`" + `local')dnl
MAILER(` + "`" + `smtp')dnl
`

// startSendmail builds a .cf with m4 and runs sendmail -bD. Sendmail
// sleeps a minute at start when its host name is not qualified, so it
// runs in a UTS namespace of its own named mx.local.test.
func startSendmail(t testing.TB, milterPort int) *sendmail {
	t.Helper()
	root := requireSendmail(t)
	// Sendmail checks the directories above its files, and the local
	// mailer runs as another user: a readable base directory, not TempDir.
	dir, err := os.MkdirTemp("", "vouch-sendmail-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	s := &sendmail{t: t, port: freePort(t), outDir: filepath.Join(dir, "out"), done: make(chan struct{}), log: filepath.Join(dir, "traffic.log")}
	for _, d := range []string{s.outDir, filepath.Join(dir, "queue")} {
		os.MkdirAll(d, 0o700)
	}
	os.Chmod(s.outDir, 0o1777)
	write(t, filepath.Join(dir, "deliver.sh"), fmt.Sprintf("#!/bin/sh\nf=%s/$$.$(date +%%s%%N)\ncat > \"$f.tmp\" && mv \"$f.tmp\" \"$f.eml\"\n", s.outDir))
	os.Chmod(filepath.Join(dir, "deliver.sh"), 0o755)
	write(t, filepath.Join(dir, "aliases"), "")
	write(t, filepath.Join(dir, "hosts"), "127.0.0.1\tlocalhost mx.local.test\n")
	write(t, filepath.Join(dir, "service.switch"), "hosts\tfiles\naliases\tfiles\n")
	mc := strings.NewReplacer("@CF@", filepath.Join(root, "usr/share/sendmail/cf"), "@DIR@", dir,
		"@PORT@", fmt.Sprint(s.port), "@MILTER@", fmt.Sprint(milterPort)).Replace(sendmailMC)
	write(t, filepath.Join(dir, "vouch.mc"), mc)
	m4 := exec.Command(filepath.Join(root, "usr/bin/m4"), filepath.Join(dir, "vouch.mc"))
	var cf, m4err bytes.Buffer
	m4.Stdout, m4.Stderr = &cf, &m4err
	if err := m4.Run(); err != nil || m4err.Len() > 0 {
		t.Fatalf("m4: %v\n%s", err, m4err.String())
	}
	cfPath := filepath.Join(dir, "vouch.cf")
	write(t, cfPath, cf.String())

	bin := filepath.Join(root, "usr/libexec/sendmail/sendmail")
	env := append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "usr/lib/x86_64-linux-gnu")+":"+filepath.Join(root, "lib/x86_64-linux-gnu"))
	sh := func(args string) *exec.Cmd {
		c := exec.Command("unshare", "--uts", "sh", "-c", "hostname mx.local.test && exec \"$0\" "+args, bin, cfPath, s.log)
		c.Env = env
		return c
	}
	if out, err := sh(`-bi -C "$1"`).CombinedOutput(); err != nil { // newaliases
		t.Fatalf("sendmail -bi: %v\n%s", err, out)
	}
	s.cmd = sh(`-bD -C "$1" -X "$2"`)
	logs := &testutil.LogBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = logs, logs
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		// The daemon and the children it forked per connection.
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		if t.Failed() {
			traffic, _ := os.ReadFile(s.log)
			t.Logf("sendmail output:\n%s\ntraffic log:\n%s", logs.String(), traffic)
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-s.done:
			t.Fatalf("sendmail exited: %v\n%s", s.cmd.ProcessState, logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", s.addr(), time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sendmail does not listen on %s\n%s", s.addr(), logs.String())
		}
	}
	return s
}

func (s *sendmail) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// waitMail returns the delivered message that contains marker.
func (s *sendmail) waitMail(marker string) []byte {
	s.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(s.outDir, "*.eml"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(marker)) {
				return b
			}
		}
	}
	traffic, _ := os.ReadFile(s.log)
	s.t.Fatalf("no message with %q delivered\ntraffic log:\n%s", marker, traffic)
	return nil
}

// TestSendmail runs vouch as the milter of a real Sendmail 8.17 (Debian's
// binary) and checks what Sendmail delivers: trusted mail signed so that
// go-msgauth and dkimpy verify it (folded header fields, 8-bit body),
// Sendmail's own additions after signing, the macros vouch asks for, and
// untrusted mail left alone.
func TestSendmail(t *testing.T) {
	dir := t.TempDir()
	z := newZone(t)
	key := z.genkey(t, dir+"/keys", "example.test", "mail", "rsa")
	config := func(internal, oversign string) string {
		return fmt.Sprintf(`
[dns]
servers = [%q]
timeout = "2s"
[signing]
internal_hosts = %s
oversign = %s
[[signing.key]]
domain = "example.test"
selector = "mail"
private_key = %q
[screen]
enabled = false
`, z.Addr, internal, oversign, key)
	}
	v := startVouch(t, dir, config(`["127.0.0.1", "::1"]`, sendmailOversign))
	sm := startSendmail(t, v.port)
	reload := func(cfg string) {
		t.Helper()
		old, _ := os.ReadFile(v.config)
		listen, _, _ := strings.Cut(string(old), "\n")
		write(t, v.config, listen+"\n"+cfg)
		before := strings.Count(v.logs.String(), `msg=reloaded`)
		v.cmd.Process.Signal(syscall.SIGHUP)
		for deadline := time.Now().Add(10 * time.Second); strings.Count(v.logs.String(), `msg=reloaded`) == before; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("vouch did not reload:\n%s", v.logs.String())
			}
		}
	}
	send := func(t *testing.T, from, msg string) {
		t.Helper()
		if s := deliver(t, sm.addr(), nil, from, "bob@local.test", msg); s.Stage != "" {
			t.Fatalf("Sendmail refused the message: %+v", s)
		}
	}
	verifyGoMsgauth := func(msg []byte) error {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: z.lookupTXT})
		if err != nil {
			return err
		}
		if len(vs) != 1 {
			return fmt.Errorf("%d signatures", len(vs))
		}
		return vs[0].Err
	}

	t.Run("trusted client is signed", func(t *testing.T) {
		msg := strings.Replace(message("alice@example.test", "sendmail-1"), "Subject: sendmail-1\n",
			"Subject: sendmail-1 with a subject\n\tfolded over two lines\n", 1)
		send(t, "alice@example.test", msg)
		got := sm.waitMail("sendmail-1")
		if d := z.verifyAll(t, got); !slices.Equal(d, []string{"example.test"}) {
			t.Fatalf("signatures for %v", d)
		}
	})

	t.Run("macros vouch asks for reach it", func(t *testing.T) {
		send(t, "alice@example.test", message("alice@example.test", "sendmail-2"))
		got := sm.waitMail("sendmail-2")
		id := regexp.MustCompile(`with ESMTP id (\w+)`).FindSubmatch(got)
		if id == nil {
			t.Fatalf("no queue id in:\n%s", got)
		}
		// i is in none of the .mc's Milter.macros lists.
		line := regexp.MustCompile(`(?m)^.*msg=message qid=` + string(id[1]) + ` .*$`).FindString(v.logs.String())
		if line == "" {
			t.Fatalf("no log line with qid=%s: Sendmail did not send the macros vouch asked for\n%s", id[1], v.logs.String())
		}
		for _, want := range []string{"client=localhost", "ip=127.0.0.1", "result=signed"} {
			if !strings.Contains(line, want) {
				t.Errorf("log line lacks %q: %s", want, line)
			}
		}
	})

	t.Run("Date and Message-Id that Sendmail adds after signing", func(t *testing.T) {
		send(t, "alice@example.test", "From: alice@example.test\nTo: bob@local.test\nSubject: sendmail-3\n\nno Date, no Message-ID\n")
		got := sm.waitMail("sendmail-3")
		if !bytes.Contains(got, []byte("\nDate: ")) || !bytes.Contains(got, []byte("\nMessage-Id: ")) {
			t.Fatalf("Sendmail added no Date or Message-Id:\n%s", got)
		}
		z.verifyAll(t, got)
	})

	t.Run("oversigned Date and Message-ID that Sendmail adds later", func(t *testing.T) {
		// vouch oversigns Date and Message-ID only when the message has
		// them, so that Sendmail adding them at delivery does not break
		// the signature.
		reload(config(`["127.0.0.1", "::1"]`, `["From", "Date", "Message-ID"]`))
		send(t, "alice@example.test", "From: alice@example.test\nTo: bob@local.test\nSubject: sendmail-4\n\nno Date, no Message-ID\n")
		if err := verifyGoMsgauth(sm.waitMail("sendmail-4")); err != nil {
			t.Fatal(err)
		}
		// With the header fields present, they are oversigned.
		send(t, "alice@example.test", message("alice@example.test", "sendmail-5"))
		if err := verifyGoMsgauth(sm.waitMail("sendmail-5")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("untrusted client is not signed", func(t *testing.T) {
		reload(config(`["10.0.0.0/8"]`, sendmailOversign))
		send(t, "alice@example.test", message("alice@example.test", "sendmail-6"))
		got := sm.waitMail("sendmail-6")
		if signatures(got) != 0 {
			t.Fatalf("signed although 127.0.0.1 is not internal:\n%s", got)
		}
	})
}
