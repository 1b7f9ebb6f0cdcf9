package hijack

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
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

// redisServer is a private redis-server (testutil.Redis).
type redisServer = testutil.Redis

func startRedis(t testing.TB, args ...string) *redisServer { return testutil.StartRedis(t, args...) }

func startSentinel(t testing.TB, master *redisServer) *redisServer {
	return testutil.StartSentinel(t, master)
}
