package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// postfix is a private Postfix instance (postfix -c DIR) that listens on
// loopback only, delivers *@local.test into Maildirs and sends nothing
// anywhere else. See ../shared notes: chroot off, no DNS for peers,
// XCLIENT allowed from loopback so tests can pose as any client.
type postfix struct {
	t       testing.TB
	dir     string // config directory
	mailDir string // virtual_mailbox_base
	logFile string
}

// listener is one smtpd service in master.cf with its own milter.
type listener struct {
	Port   int
	Milter string // smtpd_milters for this listener
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func requirePostfix(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/postfix"); err != nil {
		if os.Getenv("VOUCH_SKIP_E2E") != "" {
			t.Skip("postfix not installed and VOUCH_SKIP_E2E set")
		}
		t.Fatal("postfix is not installed: run .ci/run (or apt-get install postfix) or set VOUCH_SKIP_E2E=1")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the end-to-end tests run a private Postfix and need root")
	}
}

// startPostfix writes a private configuration and starts Postfix.
// nonSMTPMilter is used for local submissions (sendmail).
func startPostfix(t testing.TB, listeners []listener, nonSMTPMilter string, extra map[string]string) *postfix {
	t.Helper()
	requirePostfix(t)
	base, err := os.MkdirTemp("", "vouch-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	p := &postfix{t: t, dir: filepath.Join(base, "etc"), mailDir: filepath.Join(base, "mail"), logFile: filepath.Join(base, "maillog")}
	for _, d := range []string{p.dir, p.mailDir, filepath.Join(base, "queue"), filepath.Join(base, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(p.mailDir, 65534, 65534)
	if u, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(filepath.Join(base, "data"), uid, gid)
	}

	master, err := os.ReadFile("/usr/share/postfix/master.cf.dist")
	if err != nil {
		t.Fatal(err)
	}
	var mc strings.Builder
	for _, line := range strings.Split(string(master), "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") {
			if f[0] == "smtp" && f[1] == "inet" {
				continue // no port 25
			}
			f[4] = "n" // no chroot: Debian's init script would have to copy files there
			line = strings.Join(f, "\t")
		}
		mc.WriteString(line + "\n")
	}
	for _, l := range listeners {
		fmt.Fprintf(&mc, "127.0.0.1:%d inet n - n - - smtpd\n  -o smtpd_milters=%s\n", l.Port, l.Milter)
	}
	write(t, filepath.Join(p.dir, "master.cf"), mc.String())
	write(t, filepath.Join(p.dir, "vmailbox"), "@local.test local.test/catchall/\n")

	settings := map[string]string{
		"compatibility_level":            "3.6",
		"queue_directory":                filepath.Join(base, "queue"),
		"data_directory":                 filepath.Join(base, "data"),
		"myhostname":                     "mx.local.test",
		"mydomain":                       "local.test",
		"myorigin":                       "local.test",
		"mydestination":                  "",
		"inet_interfaces":                "loopback-only",
		"inet_protocols":                 "ipv4",
		"mynetworks":                     "127.0.0.0/8",
		"alias_maps":                     "",
		"alias_database":                 "",
		"local_recipient_maps":           "",
		"virtual_mailbox_domains":        "local.test",
		"virtual_mailbox_base":           p.mailDir,
		"virtual_mailbox_maps":           "texthash:" + filepath.Join(p.dir, "vmailbox"),
		"virtual_uid_maps":               "static:65534",
		"virtual_gid_maps":               "static:65534",
		"default_transport":              "error:no outside delivery in tests",
		"relay_transport":                "error:no outside delivery in tests",
		"smtpd_authorized_xclient_hosts": "127.0.0.0/8",
		"smtpd_peername_lookup":          "no",
		"smtp_dns_support_level":         "disabled",
		"maillog_file":                   p.logFile,
		"maillog_file_prefixes":          base,
		"non_smtpd_milters":              nonSMTPMilter,
		"milter_protocol":                "6",
		"milter_default_action":          "accept",
		"smtpd_relay_restrictions":       "permit_mynetworks, reject_unauth_destination",
		"smtputf8_enable":                "no",
		"biff":                           "no",
		"delay_warning_time":             "0",
		"queue_run_delay":                "1s",
		"minimal_backoff_time":           "1s",
		"maximal_backoff_time":           "2s",
	}
	for k, v := range extra {
		settings[k] = v
	}
	var mainCf strings.Builder
	for k, v := range settings {
		fmt.Fprintf(&mainCf, "%s = %s\n", k, v)
	}
	write(t, filepath.Join(p.dir, "main.cf"), mainCf.String())
	p.run("check")
	p.run("start")
	t.Cleanup(p.stop)
	for _, l := range listeners {
		waitPort(t, fmt.Sprintf("127.0.0.1:%d", l.Port))
	}
	return p
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (p *postfix) run(args ...string) {
	p.t.Helper()
	out, err := exec.Command("/usr/sbin/postfix", append([]string{"-c", p.dir}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("postfix %v: %v\n%s\n%s", args, err, out, p.log())
	}
}

// set changes main.cf parameters and reloads.
func (p *postfix) set(kv ...string) {
	p.t.Helper()
	args := []string{"-c", p.dir, "-e"}
	for i := 0; i+1 < len(kv); i += 2 {
		args = append(args, kv[i]+" = "+kv[i+1])
	}
	if out, err := exec.Command("/usr/sbin/postconf", args...).CombinedOutput(); err != nil {
		p.t.Fatalf("postconf: %v\n%s", err, out)
	}
	p.run("reload")
	time.Sleep(500 * time.Millisecond) // master restarts its children
}

func (p *postfix) stop() {
	pidData, _ := os.ReadFile(filepath.Join(filepath.Dir(p.dir), "queue", "pid", "master.pid"))
	exec.Command("/usr/sbin/postfix", "-c", p.dir, "stop").Run()
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidData)))
	deadline := time.Now().Add(10 * time.Second)
	for pid > 0 && time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p.t.Failed() {
		p.t.Logf("postfix log:\n%s", p.log())
	}
	os.RemoveAll(filepath.Dir(p.dir))
}

func (p *postfix) log() string {
	b, _ := os.ReadFile(p.logFile)
	return string(b)
}

// sendmail submits a message locally (non_smtpd_milters path).
func (p *postfix) sendmail(from, to, msg string) {
	p.t.Helper()
	cmd := exec.Command("/usr/sbin/sendmail", "-C", p.dir, "-f", from, "-i", to)
	cmd.Stdin = strings.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("sendmail: %v\n%s", err, out)
	}
}

// waitMail waits for a message whose body or headers contain marker in the
// catch-all Maildir and returns it.
func (p *postfix) waitMail(marker string) []byte {
	p.t.Helper()
	dir := filepath.Join(p.mailDir, "local.test", "catchall", "new")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil && bytes.Contains(b, []byte(marker)) {
				return b
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("no message with %q delivered\npostfix log:\n%s", marker, p.log())
	return nil
}

func waitPort(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// smtp is a minimal SMTP client that shows the replies as they are.
type smtp struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialSMTP(t testing.TB, addr string) *smtp {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	s := &smtp{t: t, c: c, r: bufio.NewReader(c)}
	if code, text := s.reply(); code != 220 {
		t.Fatalf("greeting: %d %s", code, text)
	}
	return s
}

// reply reads one (possibly multi-line) reply. A closed connection is code 0.
func (s *smtp) reply() (int, string) {
	var lines []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(lines, "\n")
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			code, _ := strconv.Atoi(line[:min(3, len(line))])
			return code, strings.Join(lines, "\n")
		}
	}
}

func (s *smtp) cmd(line string) (int, string) {
	fmt.Fprintf(s.c, "%s\r\n", line)
	return s.reply()
}

// data sends a message after DATA's 354 (CRLF, dot-stuffed, ".") and
// returns the reply to it.
func (s *smtp) data(msg string) (int, string) {
	var b strings.Builder
	for _, line := range strings.Split(strings.ReplaceAll(msg, "\r\n", "\n"), "\n") {
		if strings.HasPrefix(line, ".") {
			line = "." + line
		}
		b.WriteString(line + "\r\n")
	}
	b.WriteString(".\r\n")
	s.c.Write([]byte(b.String()))
	return s.reply()
}

func (s *smtp) close() {
	fmt.Fprintf(s.c, "QUIT\r\n")
	s.c.Close()
}

// session is what a client did and saw in one transaction.
type session struct {
	Stage string // the command that got a non-2xx/3xx reply, or "" if accepted
	Code  int
	Reply string
	Open  bool // whether the server kept the connection open afterwards
}

// client is who we pretend to be through XCLIENT.
type client struct {
	Addr string // IP address
	Name string // verified host name, "" for [UNAVAILABLE]
	HELO string
}

// deliver runs one SMTP transaction; with a client set, it first poses as
// that client through XCLIENT.
func deliver(t testing.TB, addr string, cl *client, from, to, msg string) session {
	t.Helper()
	s := dialSMTP(t, addr)
	defer s.close()
	helo := "localhost"
	if code, text := s.cmd("EHLO " + helo); code != 250 {
		t.Fatalf("EHLO: %d %s", code, text)
	}
	if cl != nil {
		name := cl.Name
		if name == "" {
			name = "[UNAVAILABLE]"
		}
		if code, text := s.cmd(fmt.Sprintf("XCLIENT ADDR=%s NAME=%s HELO=%s", cl.Addr, name, cl.HELO)); code != 220 {
			t.Fatalf("XCLIENT: %d %s", code, text)
		}
		if code, text := s.cmd("EHLO " + cl.HELO); code != 250 {
			return session{"EHLO", code, text, code != 0 && code != 421}
		}
	}
	steps := []struct{ stage, line string }{{"MAIL", "MAIL FROM:<" + from + ">"}, {"RCPT", "RCPT TO:<" + to + ">"}, {"DATA", "DATA"}}
	for _, st := range steps {
		code, text := s.cmd(st.line)
		if code/100 != 2 && code != 354 {
			open := true
			if c2, _ := s.cmd("NOOP"); c2 == 0 {
				open = false
			}
			return session{st.stage, code, text, open}
		}
	}
	code, text := s.data(msg)
	if code/100 != 2 {
		return session{"END", code, text, true}
	}
	return session{"", code, text, true}
}
