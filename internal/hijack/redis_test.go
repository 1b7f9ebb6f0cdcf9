package hijack

import (
	"strings"
	"sync"
	"testing"
	"time"
	"vouch/internal/testutil"
)

func redisConfig(t testing.TB, c *clock, r *redisServer) Config {
	cfg := testConfig(t, c)
	cfg.Backend, cfg.RedisURL, cfg.RedisFailOpen = BackendRedis, r.URL(), true
	return cfg
}

// TestRedisSharedLimit: two instances count into one window.
func TestRedisSharedLimit(t *testing.T) {
	r := startRedis(t)
	c := newClock()
	cfg := redisConfig(t, c, r)
	cfg.Messages, cfg.Recipients, cfg.Window = 5, 100, 10*time.Minute
	a, b := newGuard(t, cfg), newGuard(t, cfg)
	guards := []*Guard{a, b}
	for i := 0; i < 5; i++ {
		if r := send(guards[i%2], "alice@example.com", ip1, 2); r != nil {
			t.Fatalf("message %d refused: %s", i+1, r)
		}
		c.Advance(time.Minute)
	}
	for i, g := range guards {
		if r := send(g, "alice@example.com", ip1, 1); replyString(r)[:3] != "452" {
			t.Fatalf("instance %d: 6th message: %s", i, replyString(r))
		}
	}
	// Sliding: at +10m the first message (from a) left the window.
	c.Advance(10*time.Minute - 5*time.Minute)
	if r := send(b, "alice@example.com", ip1, 1); r != nil {
		t.Fatalf("after the window slid: %s", r)
	}
	if r := send(a, "alice@example.com", ip1, 1); r == nil {
		t.Fatal("window full again, but accepted")
	}
	// The list comes from Redis, the same on both.
	l, err := a.List(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != "redis" || len(l.Accounts) != 1 || l.Accounts[0].Messages != 5 || l.Accounts[0].Recipients != 9 ||
		strings.Join(l.Accounts[0].IPs, ",") != "192.0.2.7" {
		t.Fatalf("list %+v", l)
	}
	if st := a.Stats(); st.RedisErrors != 0 || st.RedisFallbacks != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRedisFreezeShared: a freeze by one instance holds on every instance,
// the postmaster gets one mail even when both instances go over the limit
// at once, and a release on one instance releases everywhere.
func TestRedisFreezeShared(t *testing.T) {
	r := startRedis(t)
	sink := testutil.NewSMTPServer(t)
	c := newClock()
	cfg := redisConfig(t, c, r)
	cfg.Messages, cfg.Action = 4, ActionFreeze
	cfg.Postmaster, cfg.NotifySMTP = "postmaster@example.com", sink.Addr
	a, b := newGuard(t, cfg), newGuard(t, cfg)
	for i := 0; i < 4; i++ {
		send(a, "alice@example.com", ip1, 1)
	}
	// Both instances see the full window and freeze in parallel.
	var wg sync.WaitGroup
	for _, g := range []*Guard{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := send(g, "alice@example.com", ip2, 1); r == nil || r.Code != 550 {
				t.Errorf("got %s", replyString(r))
			}
		}()
	}
	wg.Wait()
	m := sink.Wait(t, 1)[0]
	// IPs and the (distinct) recipient sample come from Redis.
	if !strings.Contains(m.Data, "Client IPs:  192.0.2.7\r\n") || strings.Count(m.Data, "rcpt0@dest.example") != 1 ||
		!strings.Contains(m.Data, "Messages:    4 in the last 30m0s (limit 4)") {
		t.Fatalf("notification:\n%s", m.Data)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d notifications for one freeze", n)
	}
	if fa, fb := a.Stats().Freezes, b.Stats().Freezes; fa+fb != 1 {
		t.Fatalf("freezes counted: %d + %d", fa, fb)
	}
	l, err := b.List(ctx())
	if err != nil || len(l.Frozen) != 1 || l.Frozen[0].Login != "alice@example.com" {
		t.Fatalf("list: %+v %v", l, err)
	}
	// A new instance (a restart) sees the freeze.
	d := newGuard(t, cfg)
	if r := send(d, "alice@example.com", ip1, 1); r == nil || r.Code != 550 {
		t.Fatalf("restarted instance: %s", replyString(r))
	}
	if was, err := b.Release(ctx(), "alice@example.com", "test"); !was || err != nil {
		t.Fatalf("release: %v %v", was, err)
	}
	for i, g := range []*Guard{a, b, d} {
		if r := send(g, "alice@example.com", ip1, 1); r != nil {
			t.Fatalf("instance %d after release: %s", i, r)
		}
	}
	// A later freeze is a new notification.
	for i := 0; i < 4; i++ {
		send(a, "alice@example.com", ip1, 1)
	}
	sink.Wait(t, 2)
}

// TestRedisDown: Redis stopped mid-run. Fail-open counts locally (what this
// instance accepted, before and during the outage) and keeps a freeze
// seen before; fail-closed tempfails authenticated senders with 451 4.3.0.
func TestRedisDown(t *testing.T) {
	t.Run("fail-open", func(t *testing.T) {
		r := startRedis(t)
		c := newClock()
		cfg := redisConfig(t, c, r)
		cfg.Messages = 4
		g := newGuard(t, cfg)
		other := newGuard(t, cfg)
		send(g, "alice@example.com", ip1, 1)
		send(g, "alice@example.com", ip1, 1)
		send(other, "alice@example.com", ip1, 1) // shared: 3 in Redis, 2 seen by g
		if r := send(g, "alice@example.com", ip1, 1); r != nil {
			t.Fatalf("4th: %s", r)
		}
		if r := send(g, "alice@example.com", ip1, 1); r == nil {
			t.Fatal("5th accepted with redis up")
		}
		r.Stop()
		// g saw 3 of its own: one more locally, then the local limit.
		if r := send(g, "alice@example.com", ip1, 1); r != nil {
			t.Fatalf("redis down, fail-open: %s", r)
		}
		if r := send(g, "alice@example.com", ip1, 1); replyString(r)[:3] != "452" {
			t.Fatalf("redis down, local limit: %s", replyString(r))
		}
		if r := send(g, "bob@example.com", ip1, 1); r != nil {
			t.Fatalf("redis down, other login: %s", r)
		}
		st := g.Stats()
		if st.RedisErrors == 0 || st.RedisFallbacks < 3 || st.RedisRefused != 0 {
			t.Fatalf("stats %+v", st)
		}
		l, _ := g.List(ctx())
		if !strings.Contains(l.Source, "redis unreachable") {
			t.Fatalf("list source %q", l.Source)
		}
	})
	t.Run("fail-open keeps known freezes and writes back new ones", func(t *testing.T) {
		r := startRedis(t)
		sink := testutil.NewSMTPServer(t)
		c := newClock()
		cfg := redisConfig(t, c, r)
		cfg.Messages, cfg.Action = 1, ActionFreeze
		cfg.Postmaster, cfg.NotifySMTP = "postmaster@example.com", sink.Addr
		g := newGuard(t, cfg)
		g.redisRetry = 10 * time.Millisecond
		send(g, "mallory@example.com", ip1, 1)
		if r := send(g, "mallory@example.com", ip1, 1); r == nil || r.Code != 550 {
			t.Fatalf("not frozen: %s", replyString(r))
		}
		r.Stop()
		if r := send(g, "mallory@example.com", ip1, 1); r == nil || r.Code != 550 {
			t.Fatalf("freeze forgotten while redis is down: %s", replyString(r))
		}
		// A freeze made during the outage: mailed at once, written to Redis
		// when it is back, and not mailed again.
		send(g, "eve@example.com", ip2, 1)
		if r := send(g, "eve@example.com", ip2, 1); r == nil || r.Code != 550 {
			t.Fatalf("eve: %s", replyString(r))
		}
		sink.Wait(t, 2)
		r.Start() // same port, empty data set
		time.Sleep(20 * time.Millisecond)
		send(g, "carol@example.com", ip1, 1) // any Redis call writes pending freezes back
		fresh := newGuard(t, cfg)
		if r := send(fresh, "eve@example.com", ip2, 1); r == nil || r.Code != 550 {
			t.Fatalf("outage freeze not written back: %s", replyString(r))
		}
		time.Sleep(100 * time.Millisecond)
		if n := len(sink.Messages()); n != 2 {
			t.Fatalf("%d notifications", n)
		}
	})
	t.Run("fail-closed", func(t *testing.T) {
		r := startRedis(t)
		c := newClock()
		cfg := redisConfig(t, c, r)
		cfg.RedisFailOpen = false
		g := newGuard(t, cfg)
		if r := send(g, "alice@example.com", ip1, 1); r != nil {
			t.Fatalf("redis up: %s", r)
		}
		r.Stop()
		for i := 0; i < 3; i++ {
			if r := send(g, "alice@example.com", ip1, 1); replyString(r) != "451 4.3.0 Temporary local problem, try again later" {
				t.Fatalf("redis down, fail-closed: %s", replyString(r))
			}
		}
		// Exempt and unauthenticated traffic is not the guard's business.
		if st := g.Stats(); st.RedisRefused != 3 || st.RedisErrors == 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("unreachable at start", func(t *testing.T) {
		c := newClock()
		cfg := testConfig(t, c)
		cfg.Backend, cfg.RedisURL, cfg.Messages = BackendRedis, "redis://127.0.0.1:1/0", 2
		g := newGuard(t, cfg)
		send(g, "alice@example.com", ip1, 1)
		send(g, "alice@example.com", ip1, 1)
		if r := send(g, "alice@example.com", ip1, 1); r == nil {
			t.Fatal("local limit not applied")
		}
	})
}

// TestRedisOutageBackfill: messages accepted on local counts while Redis
// was unreachable (fail-open) are added to the shared window, with their
// own times, once Redis answers again; before, every outage gave the login
// a fresh limit on every instance.
func TestRedisOutageBackfill(t *testing.T) {
	r := startRedis(t)
	c := newClock()
	cfg := redisConfig(t, c, r)
	cfg.Messages, cfg.Window = 5, 10*time.Minute
	g := newGuard(t, cfg)
	g.redisRetry = 10 * time.Millisecond
	other := newGuard(t, cfg)
	r.Stop()
	for i := 0; i < 3; i++ {
		if r := send(g, "alice@example.com", ip1, 2); r != nil {
			t.Fatalf("outage message %d: %s", i+1, r)
		}
		c.Advance(time.Minute)
	}
	if st := g.Stats(); st.RedisFallbacks == 0 {
		t.Fatalf("no local decisions during the outage: %+v", st)
	}
	r.Start() // same port, empty data set
	time.Sleep(20 * time.Millisecond)
	// Any Redis call of g writes the backlog first.
	if _, err := g.List(ctx()); err != nil {
		t.Fatal(err)
	}
	l, err := other.List(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if l.Source != "redis" || len(l.Accounts) != 1 || l.Accounts[0].Messages != 3 || l.Accounts[0].Recipients != 6 ||
		!l.Accounts[0].Oldest.Equal(newClock().Now()) {
		t.Fatalf("other instance after the outage: %+v", l)
	}
	// The shared limit holds on the instance that never saw the outage.
	send(other, "alice@example.com", ip1, 1)
	send(other, "alice@example.com", ip1, 1)
	if r := send(other, "alice@example.com", ip1, 1); replyString(r)[:3] != "452" {
		t.Fatalf("6th message in the window: %s", replyString(r))
	}
	// Written once: more Redis calls do not add the backlog again, and the
	// outage messages leave the window at their own times.
	g.List(ctx())
	c.Advance(7 * time.Minute) // 10:10: the 10:00 message leaves, 10:01 stays
	l, _ = other.List(ctx())
	if len(l.Accounts) != 1 || l.Accounts[0].Messages != 4 {
		t.Fatalf("after the first outage message left the window: %+v", l)
	}
}

func TestMemberIP(t *testing.T) {
	for m, want := range map[string]string{
		"1700000000000:3:192.0.2.7:ab12-1":    "192.0.2.7",
		"1700000000000:3:2001:db8::25:ab12-2": "2001:db8::25",
		"1700000000000:0:invalid IP:ab12-3":   "",
		"garbage":                             "",
	} {
		if got := memberIP(m); got != want {
			t.Errorf("memberIP(%q) = %q, want %q", m, got, want)
		}
	}
}
