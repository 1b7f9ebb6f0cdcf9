package hijack

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"vouch/internal/testutil"
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fleetConfig(t *testing.T, c *clock) Config {
	cfg := testConfig(t, c)
	cfg.Backend, cfg.RedisFailOpen = BackendRedis, true
	cfg.Messages, cfg.Action = 3, ActionFreeze
	return cfg
}

// TestRedisSentinel: two instances share counters through Sentinel; the
// master is killed, Sentinel promotes the replica, the freeze survives and
// counting goes on in the new master.
func TestRedisSentinel(t *testing.T) {
	master := startRedis(t)
	replica := startRedis(t, "--replicaof", "127.0.0.1", fmt.Sprint(master.Port))
	sentinel := startSentinel(t, master)
	c := newClock()
	cfg := fleetConfig(t, c)
	cfg.RedisSentinels, cfg.RedisMasterName = []string{sentinel.Addr()}, "m"
	a, b := newGuard(t, cfg), newGuard(t, cfg)
	a.redisRetry, b.redisRetry = 10*time.Millisecond, 10*time.Millisecond
	send(a, "alice@example.com", ip1, 1)
	send(b, "alice@example.com", ip1, 1)
	for _, g := range []*Guard{a, b, a, b} {
		send(g, "mallory@example.com", ip1, 1)
	}
	if !frozen(b, "mallory@example.com") {
		t.Fatal("mallory not frozen")
	}
	l, err := b.List(ctx())
	if err != nil || len(l.Accounts) != 2 || l.Accounts[0].Messages != 2 || l.Node != "redis "+master.Addr() {
		t.Fatalf("list through sentinel: %+v %v", l, err)
	}
	// Everything written is on the replica before the master dies.
	mc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer mc.Close()
	if n, err := mc.Do(ctx(), "WAIT", 1, 5000).Int(); n != 1 || err != nil {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	master.Stop()
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr()})
	defer sc.Close()
	waitFor(t, 20*time.Second, "sentinel failover", func() bool {
		addr, err := sc.GetMasterAddrByName(ctx(), "m").Result()
		return err == nil && len(addr) == 2 && addr[1] == fmt.Sprint(replica.Port)
	})
	// A fresh instance reads from the new master only (no local mirror).
	fresh := newGuard(t, cfg)
	waitFor(t, 10*time.Second, "the new master answering", func() bool {
		_, f, err := fresh.redis.check(ctx(), "mallory@example.com", c.Now())
		return err == nil && f != nil
	})
	send(a, "alice@example.com", ip1, 1)
	waitFor(t, 5*time.Second, "counting in the new master", func() bool {
		l, err := fresh.List(ctx())
		return err == nil && len(l.Accounts) == 2 && l.Accounts[0].Login == "alice@example.com" &&
			l.Accounts[0].Messages >= 3 && len(l.Frozen) == 1 && l.Node == "redis "+replica.Addr()
	})
	if r := send(fresh, "alice@example.com", ip1, 1); r == nil || r.Code != 550 {
		t.Fatalf("4th message of alice, shared across the failover: %s", replyString(r))
	}
}

// TestRedisCluster: the sharing and freeze test on a 3-master Cluster;
// logins spread over the masters, the freeze list and release work across
// slots.
func TestRedisCluster(t *testing.T) {
	addrs := testutil.StartRedisCluster(t)
	c := newClock()
	cfg := fleetConfig(t, c)
	cfg.RedisCluster = addrs[:1] // the client finds the other nodes
	a, b := newGuard(t, cfg), newGuard(t, cfg)
	logins := []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "eve@example.com", "frank@example.com"}
	masters := map[string]bool{}
	cc := a.redis.c.(*redis.ClusterClient)
	for _, login := range logins {
		m, err := cc.MasterForKey(ctx(), winKey(login))
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr] = true
		for i, g := range []*Guard{a, b, a} {
			if r := send(g, login, ip1, 1); r != nil {
				t.Fatalf("%s message %d: %s", login, i+1, r)
			}
		}
	}
	if len(masters) < 2 {
		t.Fatalf("all logins on one master: %v", masters)
	}
	l, err := b.List(ctx())
	if err != nil || len(l.Accounts) != len(logins) || l.Accounts[0].Messages != 3 || !strings.HasPrefix(l.Node, "redis cluster, masters ") {
		t.Fatalf("list: %+v %v", l, err)
	}
	for _, login := range logins {
		if r := send(b, login, ip1, 1); r == nil || r.Code != 550 {
			t.Fatalf("%s 4th message: %s", login, replyString(r))
		}
	}
	if l, err = a.List(ctx()); err != nil || len(l.Frozen) != len(logins) {
		t.Fatalf("freeze list across slots: %+v %v", l, err)
	}
	if was, err := a.Release(ctx(), "carol@example.com", "test"); !was || err != nil {
		t.Fatalf("release: %v %v", was, err)
	}
	if r := send(b, "carol@example.com", ip1, 1); r != nil {
		t.Fatalf("carol after release: %s", r)
	}
}

// TestRedisMigrateFreezes: freezes in the hash of earlier versions are
// moved to per-login keys at start, without a second notification.
func TestRedisMigrateFreezes(t *testing.T) {
	r := startRedis(t)
	sink := testutil.NewSMTPServer(t)
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	js, _ := json.Marshal(Freeze{Login: "mallory@example.com", Since: newClock().Now(), Reason: "old"})
	if err := rc.HSet(context.Background(), legacyFrozenKey, "mallory@example.com", js).Err(); err != nil {
		t.Fatal(err)
	}
	c := newClock()
	cfg := redisConfig(t, c, r)
	cfg.Postmaster, cfg.NotifySMTP, cfg.Action = testPostmaster, sink.Addr, ActionFreeze
	g := newGuard(t, cfg)
	if r := send(g, "mallory@example.com", ip1, 1); r == nil || r.Code != 550 {
		t.Fatalf("old freeze lost: %s", replyString(r))
	}
	if n, _ := rc.Exists(ctx(), legacyFrozenKey).Result(); n != 0 {
		t.Fatal("old hash left")
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("%d notifications for an old freeze", n)
	}
}
