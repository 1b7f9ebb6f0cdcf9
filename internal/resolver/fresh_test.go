package resolver

import (
	"context"
	"slices"
	"testing"
	"time"

	"vouch/internal/dnstest"
)

// TestTXTFresh: TXTFresh asks the server every time, where TXT answers
// from the cache; NXDOMAIN is a clean "none", a SERVFAIL a temporary error.
func TestTXTFresh(t *testing.T) {
	srv := dnstest.New(t, `k._domainkey.example.test. 300 IN TXT "one"`)
	r, err := New(Config{Servers: []string{srv.Addr}, Timeout: 300 * time.Millisecond, Attempts: 1, CacheSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := "k._domainkey.example.test"
	steps := []struct {
		change     func()
		cached     string
		fresh      []string
		freshState Status
		temp       bool
	}{
		{func() {}, "one", []string{"one"}, Found, false},
		{func() { srv.Remove(name); srv.MustAdd(name + `. 300 IN TXT "two"`) }, "one", []string{"two"}, Found, false},
		{func() { srv.Remove(name) }, "one", []string{}, NXDomain, false},
		{func() { srv.SetFault(name, dnstest.ServFail) }, "one", nil, 0, true},
	}
	for i, s := range steps {
		s.change()
		cached, _, err := r.TXT(ctx, name)
		if err != nil || len(cached) != 1 || cached[0] != s.cached {
			t.Fatalf("step %d: TXT = %q, %v; want the cached %q", i, cached, err, s.cached)
		}
		fresh, st, err := r.TXTFresh(ctx, name)
		if s.temp {
			if !IsTemporary(err) {
				t.Fatalf("step %d: err = %v, want a temporary error", i, err)
			}
			continue
		}
		if err != nil || st != s.freshState || !slices.Equal(fresh, s.fresh) {
			t.Fatalf("step %d: TXTFresh = %q %v %v, want %q %v", i, fresh, st, err, s.fresh, s.freshState)
		}
	}
}
