package hijack

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vouch/internal/smtpreply"
	"vouch/internal/testutil"
)

// clock is a settable clock for the Guard.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testConfig is an enabled memory-backend config in a temporary directory,
// without admin socket or notification (no postmaster).
func testConfig(t testing.TB, c *clock) Config {
	t.Helper()
	return Config{
		Enabled:    true,
		Messages:   200,
		Recipients: 500,
		Window:     30 * time.Minute,
		Action:     ActionTempfail,
		NotifySMTP: "127.0.0.1:25",
		NotifyFrom: "vouch@localhost",
		StateFile:  filepath.Join(t.TempDir(), "frozen.json"),
		Backend:    BackendMemory,
		Now:        c.Now,
	}
}

func newGuard(t testing.TB, cfg Config) *Guard {
	t.Helper()
	g, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// testLogger collects the log; a failing test shows it. Writes after the
// test (go-redis's global logger) only go to the buffer.
func testLogger(t testing.TB) *slog.Logger {
	b := &testutil.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("log:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func ctx() context.Context { return context.Background() }

var ip1 = netip.MustParseAddr("192.0.2.7")
var ip2 = netip.MustParseAddr("2001:db8::25")

// send runs one transaction: MAIL FROM check, then (if not refused) the
// end of an accepted message with n recipients. It returns the refusal or
// nil.
func send(g *Guard, login string, ip netip.Addr, n int) *smtpreply.Reply {
	if r := g.CheckSender(ctx(), login, ip); r != nil {
		return r
	}
	rcpts := make([]string, n)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("<rcpt%d@dest.example>", i)
	}
	g.Accepted(ctx(), login, ip, rcpts)
	return nil
}

func replyString(r *smtpreply.Reply) string {
	if r == nil {
		return "ok"
	}
	return r.String()
}

// smtpSink is a fake SMTP server that stores what it receives.
type smtpSink struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []sunkMail
}

type sunkMail struct {
	From, To string
	Data     string
}

func newSMTPSink(t testing.TB) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln}
	go s.serve()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *smtpSink) addr() string { return s.ln.Addr().String() }

func (s *smtpSink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.session(c)
	}
}

func (s *smtpSink) session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { fmt.Fprintf(c, "%s\r\n", line) }
	say("220 sink.test ESMTP")
	var m sunkMail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-sink.test")
			say("250 STARTTLS") // offered, and must not be used
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m = sunkMail{From: line[10:]}
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.To = line[8:]
			say("250 ok")
		case cmd == "DATA":
			say("354 go")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			m.Data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 no")
		}
	}
}

func (s *smtpSink) mails() []sunkMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunkMail(nil), s.msgs...)
}

// waitMails waits until n mails arrived and returns them.
func (s *smtpSink) waitMails(t testing.TB, n int) []sunkMail {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := s.mails(); len(m) >= n {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("want %d notification mails, got %d", n, len(s.mails()))
	return nil
}

// redisServer is a private redis-server on a free loopback port, never the
// system one.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	args []string // added to the command line (replication, cluster mode)
	conf string   // non-empty: run as a Sentinel with this config
	cmd  *exec.Cmd
}

func requireRedis(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("VOUCH_SKIP_E2E") != "" {
			t.Skip("redis-server not installed and VOUCH_SKIP_E2E set")
		}
		t.Fatal("redis-server is not installed: apt-get install redis-server (the Redis backend tests run a private one), or set VOUCH_SKIP_E2E=1")
	}
	return path
}

func startRedis(t testing.TB, args ...string) *redisServer {
	t.Helper()
	r := newRedisServer(t)
	r.args = args
	r.start()
	t.Cleanup(r.stop)
	return r
}

func newRedisServer(t testing.TB) *redisServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return &redisServer{t: t, port: port, dir: t.TempDir()}
}

// startSentinel runs redis-server as a Sentinel watching master as "m",
// quick to fail over.
func startSentinel(t testing.TB, master *redisServer) *redisServer {
	t.Helper()
	r := newRedisServer(t)
	r.conf = filepath.Join(r.dir, "sentinel.conf")
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor m 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds m 500\nsentinel failover-timeout m 5000\n", r.port, r.dir, master.port)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) url() string  { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }
func (r *redisServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	bin := requireRedis(r.t)
	if r.conf != "" {
		r.cmd = exec.Command(bin, r.conf, "--sentinel")
	} else {
		r.cmd = exec.Command(bin, append([]string{"--save", "", "--appendonly", "no", "--port", fmt.Sprint(r.port),
			"--bind", "127.0.0.1", "--dir", r.dir, "--daemonize", "no"}, r.args...)...)
	}
	var out strings.Builder
	r.cmd.Stdout, r.cmd.Stderr = &out, &out
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), time.Second); err == nil {
			fmt.Fprintf(c, "PING\r\n")
			c.SetReadDeadline(time.Now().Add(time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.cmd.Process.Kill()
	r.t.Fatalf("redis-server did not start on port %d:\n%s", r.port, out.String())
}

// stop kills this test's redis-server (by its own pid) and waits for it.
func (r *redisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}
