package hijack

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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

// redisServer is a private redis-server (testutil.Redis).
type redisServer = testutil.Redis

func startRedis(t testing.TB, args ...string) *redisServer { return testutil.StartRedis(t, args...) }

func startSentinel(t testing.TB, master *redisServer) *redisServer {
	return testutil.StartSentinel(t, master)
}
