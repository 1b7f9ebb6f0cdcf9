package policy

import (
	"context"
	"net/netip"
	"testing"
)

// BenchmarkDecisionWarmCache is one whole screening decision (PTR with
// forward confirmation, HELO, sender domain with its MX host) with every
// answer already in the resolver's cache: the cost vouch adds per SMTP
// connection on a busy MX. Target: >= 10,000 decisions/s on 2 cores.
func BenchmarkDecisionWarmCache(b *testing.B) {
	res, _ := testResolverB(b)
	s := NewScreener(testConfig(Enforce), res, nil)
	ip := netip.MustParseAddr("192.0.2.10")
	decide := func() {
		c := s.Connect(ip)
		c.Helo("mail.good.test")
		d := c.Mail(context.Background(), "user@good.test", false)
		c.Close()
		if d.Action != Accept {
			b.Fatalf("action %s", d.Action)
		}
	}
	decide() // warm the cache
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			decide()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
