package iprev

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"vouch/internal/dnstest"
	"vouch/internal/resolver"
)

func newResolver(t testing.TB, srv *dnstest.Server) *resolver.Resolver {
	t.Helper()
	res, err := resolver.New(resolver.Config{Servers: []string{srv.Addr}, Timeout: 200 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestLookup: every status, IPv4 and IPv6, through a real DNS server
// (the table of mox's iprev tests, plus vouch's limit on names).
func TestLookup(t *testing.T) {
	srv := dnstest.New(t,
		"10.2.0.192.in-addr.arpa. 300 IN PTR mail.good.test.",
		"mail.good.test. 300 IN A 192.0.2.10",
		"mail.good.test. 300 IN AAAA 2001:db8::10",
		"0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR mail.good.test.",
		// 192.0.2.20: no PTR (NXDOMAIN); 192.0.2.21: the name exists, no PTR (NODATA).
		"21.2.0.192.in-addr.arpa. 300 IN TXT \"not a ptr\"",
		// 192.0.2.30: the name points elsewhere.
		"30.2.0.192.in-addr.arpa. 300 IN PTR host.other.test.",
		"host.other.test. 300 IN A 198.51.100.1",
		// 192.0.2.31: two names, the second confirms.
		"31.2.0.192.in-addr.arpa. 300 IN PTR stale.other.test.",
		"31.2.0.192.in-addr.arpa. 300 IN PTR mx.multi.test.",
		"mx.multi.test. 300 IN A 192.0.2.31",
		// 192.0.2.32: the name's address lookup fails (SERVFAIL).
		"32.2.0.192.in-addr.arpa. 300 IN PTR servfail.test.",
		// 192.0.2.33: one name times out, the other confirms: pass.
		"33.2.0.192.in-addr.arpa. 300 IN PTR timeout.test.",
		"33.2.0.192.in-addr.arpa. 300 IN PTR ok33.test.",
		"ok33.test. 300 IN A 192.0.2.33",
		// 192.0.2.34: one name times out, the other does not match: temperror.
		"34.2.0.192.in-addr.arpa. 300 IN PTR timeout.test.",
		"34.2.0.192.in-addr.arpa. 300 IN PTR host.other.test.",
		// 192.0.2.40 and .41: the reverse zone fails (SERVFAIL, timeout).
		"40.2.0.192.in-addr.arpa. 300 IN PTR x.test.",
		"41.2.0.192.in-addr.arpa. 300 IN PTR x.test.",
		// 192.0.2.50: the confirming name is the third; only two are tried.
		"50.2.0.192.in-addr.arpa. 300 IN PTR a.other.test.",
		"50.2.0.192.in-addr.arpa. 300 IN PTR b.other.test.",
		"50.2.0.192.in-addr.arpa. 300 IN PTR c.good.test.",
		"c.good.test. 300 IN A 192.0.2.50",
		// 2001:db8::66: the name has the address only as IPv4.
		"6.6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR v4only.test.",
		"v4only.test. 300 IN A 192.0.2.66",
	)
	srv.SetFault("servfail.test", dnstest.ServFail)
	srv.SetFault("timeout.test", dnstest.Drop)
	srv.SetFault("40.2.0.192.in-addr.arpa", dnstest.ServFail)
	srv.SetFault("41.2.0.192.in-addr.arpa", dnstest.Drop)
	res := newResolver(t, srv)

	tests := []struct {
		ip       string
		status   Status
		name     string
		names    int
		evidence string // one of the lines, in part
	}{
		{"192.0.2.10", Pass, "mail.good.test.", 1, "A/AAAA mail.good.test.: 192.0.2.10"},
		{"::ffff:192.0.2.10", Pass, "mail.good.test.", 1, "PTR 192.0.2.10: mail.good.test."},
		{"2001:db8::10", Pass, "mail.good.test.", 1, "A/AAAA mail.good.test.: 2001:db8::10"},
		{"192.0.2.20", PermError, "", 0, "PTR 192.0.2.20: NXDOMAIN"},
		{"192.0.2.21", PermError, "", 0, "PTR 192.0.2.21: NODATA"},
		{"192.0.2.30", Fail, "", 1, "A/AAAA host.other.test.: 198.51.100.1"},
		{"192.0.2.31", Pass, "mx.multi.test.", 2, "A/AAAA stale.other.test.: NXDOMAIN"},
		{"192.0.2.32", TempError, "", 1, "SERVFAIL"},
		{"192.0.2.33", Pass, "ok33.test.", 2, "A/AAAA ok33.test.: 192.0.2.33"},
		{"192.0.2.34", TempError, "", 2, "timeout"},
		{"192.0.2.40", TempError, "", 0, "PTR 192.0.2.40: dns PTR 40.2.0.192.in-addr.arpa.: temporary failure: SERVFAIL"},
		{"192.0.2.41", TempError, "", 0, "timeout"},
		{"192.0.2.50", Fail, "", 3, "A/AAAA b.other.test."},
		{"2001:db8::66", Fail, "", 1, "A/AAAA v4only.test.: NODATA"},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			st, name, names, evidence, err := Lookup(context.Background(), res, netip.MustParseAddr(tc.ip), 2)
			if st != tc.status || name != tc.name || len(names) != tc.names {
				t.Fatalf("%s %q %q, want %s %q and %d names\nevidence: %q", st, name, names, tc.status, tc.name, tc.names, evidence)
			}
			if (st == TempError) != (err != nil) || (st == TempError) != resolver.IsTemporary(err) {
				t.Fatalf("status %s with error %v", st, err)
			}
			if !slices.ContainsFunc(evidence, func(l string) bool { return strings.Contains(l, tc.evidence) }) {
				t.Fatalf("no %q in the evidence %q", tc.evidence, evidence)
			}
		})
	}

	// A deadline ends the lookup as a temperror, not as a fail.
	srv.SetDelay("10.2.0.192.in-addr.arpa", 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if st, _, _, _, err := Lookup(ctx, res, netip.MustParseAddr("192.0.2.10"), 10); st != TempError || err == nil {
		t.Fatalf("deadline: %s %v", st, err)
	}
}

// FuzzIPRevZone builds a reverse and forward zone from the input (up to
// three PTR names, each with an address or none, some of them failing)
// and checks Lookup against what that zone says: the status is one of the
// four; a pass names a PTR name, within the limit, that has the address;
// a fail means no name within the limit has it and no lookup failed; a
// permerror means there is no PTR.
func FuzzIPRevZone(f *testing.F) {
	f.Add(uint8(1), uint8(0b001), uint8(0), uint8(2))
	f.Add(uint8(3), uint8(0b100), uint8(0b010), uint8(2))
	f.Add(uint8(2), uint8(0b000), uint8(0b001), uint8(3))
	f.Add(uint8(0), uint8(0), uint8(0), uint8(1))
	f.Add(uint8(2), uint8(0b010), uint8(0b001), uint8(1))
	srv := dnstest.New(f)
	// A generous timeout: the zone has no slow answers, and on a loaded
	// machine a 200 ms one made a timeout (temperror) out of a plain answer.
	res, err := resolver.New(resolver.Config{Servers: []string{srv.Addr}, Timeout: 10 * time.Second, Attempts: 1})
	if err != nil {
		f.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.77")
	const arpa = "77.2.0.192.in-addr.arpa."
	f.Fuzz(func(t *testing.T, count, match, fail, limit uint8) {
		n, max := int(count%4), int(limit%4)+1
		srv.Remove(arpa)
		type host struct {
			name         string
			match, fails bool
		}
		var hosts []host
		for i := range n {
			h := host{name: fmt.Sprintf("h%d.fuzz.test.", i), match: match&(1<<i) != 0, fails: fail&(1<<i) != 0}
			hosts = append(hosts, h)
			srv.Remove(h.name)
			srv.MustAdd(arpa + " 300 IN PTR " + h.name)
			addr := "198.51.100.1"
			if h.match {
				addr = ip.String()
			}
			srv.MustAdd(h.name + " 300 IN A " + addr)
			f := dnstest.None
			if h.fails {
				f = dnstest.ServFail
			}
			srv.SetFault(h.name, f)
		}
		st, name, names, _, err := Lookup(context.Background(), res, ip, max)
		// The PTR RRset may come back in any order; what was tried is
		// the first max names as answered.
		var tried []host
		for _, nm := range names[:min(len(names), max)] {
			for _, h := range hosts {
				if h.name == nm {
					tried = append(tried, h)
				}
			}
		}
		anyMatch := slices.ContainsFunc(tried, func(h host) bool { return h.match && !h.fails })
		anyFails := slices.ContainsFunc(tried, func(h host) bool { return h.fails })
		switch st {
		case Pass:
			i := slices.IndexFunc(tried, func(h host) bool { return h.name == name })
			if i < 0 || !tried[i].match || tried[i].fails || err != nil {
				t.Fatalf("pass with %q, not a confirming name among %v", name, tried)
			}
		case Fail:
			if anyMatch || anyFails || n == 0 || err != nil {
				t.Fatalf("fail, but the zone %v has a match or a failure", tried)
			}
		case PermError:
			if n != 0 || len(names) != 0 || err != nil {
				t.Fatalf("permerror with %d PTR names", n)
			}
		case TempError:
			if anyMatch || !anyFails || err == nil {
				t.Fatalf("temperror (%v) for the zone %v", err, tried)
			}
		default:
			t.Fatalf("status %q is none of the four", st)
		}
		if len(names) != n {
			t.Fatalf("%d names, the zone has %d", len(names), n)
		}
	})
}

// TestAddrEvidence: the evidence line, now concatenated, reads as the
// fmt.Sprintf it replaced.
func TestAddrEvidence(t *testing.T) {
	ref := func(name string, addrs []netip.Addr, st resolver.Status, err error) string {
		switch {
		case err != nil:
			return fmt.Sprintf("A/AAAA %s: %v", name, err)
		case st != resolver.Found:
			return fmt.Sprintf("A/AAAA %s: %s", name, st)
		}
		s := make([]string, len(addrs))
		for i, a := range addrs {
			s[i] = a.String()
		}
		return fmt.Sprintf("A/AAAA %s: %s", name, strings.Join(s, " "))
	}
	a4, a6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	tests := []struct {
		name  string
		addrs []netip.Addr
		st    resolver.Status
		err   error
	}{
		{"mail.good.test.", []netip.Addr{a4}, resolver.Found, nil},
		{"mail.good.test.", []netip.Addr{a4, a6, netip.MustParseAddr("::ffff:192.0.2.1")}, resolver.Found, nil},
		{"mail.good.test.", nil, resolver.Found, nil},
		{"gone.test.", nil, resolver.NXDomain, nil},
		{"empty.test.", nil, resolver.NoData, nil},
		{"slow.test.", nil, resolver.Found, &net.DNSError{Err: "i/o timeout", Name: "slow.test.", IsTimeout: true}},
	}
	for _, tc := range tests {
		if got, want := AddrEvidence(tc.name, tc.addrs, tc.st, tc.err), ref(tc.name, tc.addrs, tc.st, tc.err); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
