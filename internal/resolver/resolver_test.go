package resolver

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"vouch/internal/dnstest"
)

func newTestResolver(t *testing.T, srv *dnstest.Server, cacheSize int) *Resolver {
	t.Helper()
	r, err := New(Config{Servers: []string{srv.Addr}, Timeout: 300 * time.Millisecond, Attempts: 2, CacheSize: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestQueryClassification(t *testing.T) {
	srv := dnstest.New(t,
		"a.test. 300 IN A 192.0.2.1",
		"a.test. 300 IN A 192.0.2.2",
		"alias.test. 300 IN CNAME a.test.",
		"deep.sub.test. 300 IN A 192.0.2.9",
		"servfail.test. 300 IN A 192.0.2.3",
		"refused.test. 300 IN A 192.0.2.3",
		"drop.test. 300 IN A 192.0.2.3",
		"tc.test. 300 IN A 192.0.2.4",
		"tcalways.test. 300 IN A 192.0.2.4",
	)
	srv.SetFault("servfail.test", dnstest.ServFail)
	srv.SetFault("refused.test", dnstest.Refused)
	srv.SetFault("drop.test", dnstest.Drop)
	srv.SetFault("tc.test", dnstest.Truncate)
	srv.SetFault("tcalways.test", dnstest.TruncateAlways)
	r := newTestResolver(t, srv, 0)

	tests := []struct {
		name    string
		qtype   uint16
		status  Status
		records int
		temp    string // expected TempError reason, "" for a clean answer
	}{
		{"a.test", mdns.TypeA, Found, 2, ""},
		{"A.TEST.", mdns.TypeA, Found, 2, ""},
		{"alias.test", mdns.TypeA, Found, 2, ""},
		{"a.test", mdns.TypeMX, NoData, 0, ""},
		{"sub.test", mdns.TypeA, NoData, 0, ""}, // empty non-terminal
		{"missing.test", mdns.TypeA, NXDomain, 0, ""},
		{"servfail.test", mdns.TypeA, 0, 0, "SERVFAIL"},
		{"refused.test", mdns.TypeA, 0, 0, "REFUSED"},
		{"drop.test", mdns.TypeA, 0, 0, "timeout"},
		{"tc.test", mdns.TypeA, Found, 1, ""},
		{"tcalways.test", mdns.TypeA, 0, 0, "truncated"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s", tc.name, mdns.TypeToString[tc.qtype]), func(t *testing.T) {
			a, err := r.Query(context.Background(), tc.name, tc.qtype)
			if tc.temp != "" {
				te, ok := err.(*TempError)
				if !ok {
					t.Fatalf("got %v, %v; want TempError %s", a, err, tc.temp)
				}
				if te.Reason != tc.temp {
					t.Fatalf("reason %q, want %q", te.Reason, tc.temp)
				}
				if !IsTemporary(err) {
					t.Fatal("IsTemporary false")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != tc.status || len(a.RRs) != tc.records {
				t.Fatalf("got %v with %d records, want %v with %d", a.Status, len(a.RRs), tc.status, tc.records)
			}
		})
	}
}

func TestTruncatedAnswerRetriesOverTCP(t *testing.T) {
	srv := dnstest.New(t)
	for i := range 60 {
		srv.MustAdd(fmt.Sprintf("big.test. 300 IN TXT \"v=spf1 ip4:192.0.2.%d include:_spf%d.example.com ~all\"", i, i))
	}
	r := newTestResolver(t, srv, 0)
	txts, st, err := r.TXT(context.Background(), "big.test")
	if err != nil || st != Found || len(txts) != 60 {
		t.Fatalf("got %d records, %v, %v; want 60 over TCP", len(txts), st, err)
	}
}

func TestFailoverToSecondServer(t *testing.T) {
	dead := dnstest.New(t, "a.test. 300 IN A 192.0.2.1")
	dead.SetFault("a.test", dnstest.Drop)
	good := dnstest.New(t, "a.test. 300 IN A 192.0.2.1")
	r, err := New(Config{Servers: []string{dead.Addr, good.Addr}, Timeout: 200 * time.Millisecond, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	addrs, st, err := r.Addrs(context.Background(), "a.test", true, false)
	if err != nil || st != Found || len(addrs) != 1 {
		t.Fatalf("got %v %v %v", addrs, st, err)
	}
}

func TestCacheAndNegativeCache(t *testing.T) {
	srv := dnstest.New(t, "a.test. 300 IN A 192.0.2.1", "zero.test. 0 IN A 192.0.2.1")
	r := newTestResolver(t, srv, 100)
	ctx := context.Background()
	for _, name := range []string{"a.test", "missing.test", "zero.test"} {
		for range 3 {
			if _, err := r.Query(ctx, name, mdns.TypeA); err != nil {
				t.Fatal(err)
			}
		}
	}
	// a.test and missing.test once each; zero.test (TTL 0) every time.
	if got := srv.Queries(); got != 5 {
		t.Fatalf("server saw %d queries, want 5", got)
	}
	// After the TTL the entry is gone.
	r.cache.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := r.Query(ctx, "a.test", mdns.TypeA); err != nil {
		t.Fatal(err)
	}
	if got := srv.Queries(); got != 6 {
		t.Fatalf("server saw %d queries after expiry, want 6", got)
	}
}

func TestTemporaryErrorsAreNotCached(t *testing.T) {
	srv := dnstest.New(t, "flaky.test. 300 IN A 192.0.2.1")
	srv.SetFault("flaky.test", dnstest.ServFail)
	r := newTestResolver(t, srv, 100)
	if _, err := r.Query(context.Background(), "flaky.test", mdns.TypeA); !IsTemporary(err) {
		t.Fatalf("want temporary error, got %v", err)
	}
	srv.SetFault("flaky.test", dnstest.None)
	a, err := r.Query(context.Background(), "flaky.test", mdns.TypeA)
	if err != nil || a.Status != Found {
		t.Fatalf("after recovery: %v %v", a, err)
	}
}

func TestCacheSizeBound(t *testing.T) {
	c := newCache(50)
	for i := range 500 {
		c.Get(context.Background(), cacheKey{fmt.Sprint(i), 1}, func(context.Context) (*Answer, time.Duration, error) {
			return &Answer{TTL: time.Hour}, time.Hour, nil
		})
		if c.Len() > 50 {
			t.Fatalf("cache grew to %d", c.Len())
		}
	}
}

func TestConcurrentLookupsCollapse(t *testing.T) {
	srv := dnstest.New(t, "slow.test. 300 IN A 192.0.2.1")
	srv.SetDelay("slow.test", 100*time.Millisecond)
	r := newTestResolver(t, srv, 0)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Query(context.Background(), "slow.test", mdns.TypeA); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := srv.Queries(); got != 1 {
		t.Fatalf("server saw %d queries, want 1", got)
	}
}

func TestContextDeadlineIsTemporary(t *testing.T) {
	srv := dnstest.New(t, "slow.test. 300 IN A 192.0.2.1")
	srv.SetDelay("slow.test", 250*time.Millisecond)
	r := newTestResolver(t, srv, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, _, err := r.Addrs(ctx, "slow.test", true, true)
	if !IsTemporary(err) {
		t.Fatalf("want temporary error, got %v", err)
	}
}

func TestTypedLookups(t *testing.T) {
	srv := dnstest.New(t,
		"1.2.0.192.in-addr.arpa. 300 IN PTR Mail.Example.test.",
		"mail.example.test. 300 IN A 192.0.2.1",
		"mail.example.test. 300 IN AAAA 2001:db8::1",
		"example.test. 300 IN MX 20 mx2.example.test.",
		"example.test. 300 IN MX 10 mx1.example.test.",
		"example.test. 300 IN TXT \"v=spf1 \" \"-all\"",
		"nullmx.test. 300 IN MX 0 .",
	)
	r := newTestResolver(t, srv, 100)
	ctx := context.Background()

	names, st, err := r.PTR(ctx, netip.MustParseAddr("192.0.2.1"))
	if err != nil || st != Found || len(names) != 1 || names[0] != "mail.example.test." {
		t.Fatalf("PTR: %v %v %v", names, st, err)
	}
	_, st, err = r.PTR(ctx, netip.MustParseAddr("192.0.2.77"))
	if err != nil || st != NXDomain {
		t.Fatalf("PTR missing: %v %v", st, err)
	}
	addrs, st, err := r.Addrs(ctx, "mail.example.test", true, true)
	if err != nil || st != Found || len(addrs) != 2 {
		t.Fatalf("Addrs: %v %v %v", addrs, st, err)
	}
	mxs, _, err := r.MXs(ctx, "example.test")
	if err != nil || len(mxs) != 2 || mxs[0].Host != "mx1.example.test." {
		t.Fatalf("MX: %v %v", mxs, err)
	}
	mxs, _, err = r.MXs(ctx, "nullmx.test")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "." {
		t.Fatalf("null MX: %v %v", mxs, err)
	}
	txts, _, err := r.TXT(ctx, "example.test")
	if err != nil || len(txts) != 1 || txts[0] != "v=spf1 -all" {
		t.Fatalf("TXT: %q %v", txts, err)
	}
}

// TestHostCached: HostCached is true only while A, AAAA and MX of the name
// are all in the cache, and Addrs answers the same from the cache (looked
// up in sequence) as from the servers (in parallel).
func TestHostCached(t *testing.T) {
	srv := dnstest.New(t,
		"mail.example.test. 300 IN A 192.0.2.1",
		"mail.example.test. 300 IN AAAA 2001:db8::1",
		"mail.example.test. 300 IN MX 10 mail.example.test.",
	)
	r := newTestResolver(t, srv, 100)
	ctx := context.Background()
	want := "[192.0.2.1 2001:db8::1]"
	steps := []struct {
		name    string
		do      func() error
		cached  bool
		queries int
	}{
		{"nothing asked yet", func() error { return nil }, false, 0},
		{"addresses from the servers", func() error { return checkAddrs(r, "mail.example.test", want) }, false, 2},
		{"MX too", func() error { _, _, err := r.MXs(ctx, "mail.example.test"); return err }, true, 3},
		{"addresses from the cache", func() error { return checkAddrs(r, "Mail.Example.Test.", want) }, true, 3},
		{"expired", func() error { r.cache.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }; return nil }, false, 3},
		{"addresses again", func() error { return checkAddrs(r, "mail.example.test", want) }, false, 5},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := r.HostCached("MAIL.example.test"); got != s.cached {
			t.Fatalf("%s: HostCached = %v, want %v", s.name, got, s.cached)
		}
		if got := srv.Queries(); got != s.queries {
			t.Fatalf("%s: server saw %d queries, want %d", s.name, got, s.queries)
		}
	}
}

func checkAddrs(r *Resolver, name, want string) error {
	addrs, st, err := r.Addrs(context.Background(), name, true, true)
	if err != nil || st != Found || fmt.Sprint(addrs) != want {
		return fmt.Errorf("Addrs(%s) = %v %v %v, want %s", name, addrs, st, err, want)
	}
	return nil
}
