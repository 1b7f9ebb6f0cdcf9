package verify

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"vouch/internal/dnstest"
)

// rfc7208Zone is the example zone of RFC 7208 Appendix A.
var rfc7208Zone = []string{
	"example.com. 600 IN MX 10 mail-a.example.com.",
	"example.com. 600 IN MX 20 mail-b.example.com.",
	"example.com. 600 IN A 192.0.2.10",
	"example.com. 600 IN A 192.0.2.11",
	"amy.example.com. 600 IN A 192.0.2.65",
	"bob.example.com. 600 IN A 192.0.2.66",
	"mail-a.example.com. 600 IN A 192.0.2.129",
	"mail-b.example.com. 600 IN A 192.0.2.130",
	"www.example.com. 600 IN CNAME example.com.",
	"example.org. 600 IN MX 10 mail-c.example.org.",
	"mail-c.example.org. 600 IN A 192.0.2.140",
	"10.2.0.192.in-addr.arpa. 600 IN PTR example.com.",
	"11.2.0.192.in-addr.arpa. 600 IN PTR example.com.",
	"65.2.0.192.in-addr.arpa. 600 IN PTR amy.example.com.",
	"66.2.0.192.in-addr.arpa. 600 IN PTR bob.example.com.",
	"129.2.0.192.in-addr.arpa. 600 IN PTR mail-a.example.com.",
	"130.2.0.192.in-addr.arpa. 600 IN PTR mail-b.example.com.",
	"140.2.0.192.in-addr.arpa. 600 IN PTR mail-c.example.org.",
	"10.0.0.10.in-addr.arpa. 600 IN PTR bob.example.com.",
}

// TestSPFRFC7208Examples runs the records of RFC 7208 Appendix A.1 over
// its example zone: for each, the hosts the appendix says are
// authorized pass and the others fail.
func TestSPFRFC7208Examples(t *testing.T) {
	all := []string{"192.0.2.10", "192.0.2.11", "192.0.2.65", "192.0.2.66", "192.0.2.129", "192.0.2.130",
		"192.0.2.131", "192.0.2.140", "192.0.2.143", "192.0.2.144", "10.0.0.10", "192.0.2.1"}
	cases := []struct {
		record string
		pass   []string // every other address of all fails
	}{
		{"v=spf1 +all", all},
		{"v=spf1 a -all", []string{"192.0.2.10", "192.0.2.11"}},
		{"v=spf1 a:example.org -all", nil},
		{"v=spf1 mx -all", []string{"192.0.2.129", "192.0.2.130"}},
		{"v=spf1 mx:example.org -all", []string{"192.0.2.140"}},
		{"v=spf1 mx mx:example.org -all", []string{"192.0.2.129", "192.0.2.130", "192.0.2.140"}},
		{"v=spf1 mx/30 mx:example.org/30 -all", []string{"192.0.2.129", "192.0.2.130", "192.0.2.131", "192.0.2.140", "192.0.2.143"}},
		{"v=spf1 ptr -all", []string{"192.0.2.10", "192.0.2.11", "192.0.2.65", "192.0.2.66", "192.0.2.129", "192.0.2.130"}},
		{"v=spf1 ip4:192.0.2.128/28 -all", []string{"192.0.2.129", "192.0.2.130", "192.0.2.131", "192.0.2.140", "192.0.2.143"}},
	}
	for _, tc := range cases {
		t.Run(tc.record, func(t *testing.T) {
			_, res := newZone(t, append([]string{txtRecord("example.com", tc.record)}, rfc7208Zone...)...)
			for _, ip := range all {
				want := Fail
				for _, p := range tc.pass {
					if p == ip {
						want = Pass
					}
				}
				got := CheckSPF(context.Background(), res, netip.MustParseAddr(ip), "mx.example.net", "user@example.com")
				if got.Status != want {
					t.Errorf("%s: %s (%s), want %s", ip, got.Status, got.Reason, want)
				}
				if got.Domain != "example.com" || got.Identity != "mailfrom" {
					t.Errorf("%s: domain %q identity %q", ip, got.Domain, got.Identity)
				}
			}
		})
	}
}

// TestSPFMacros is RFC 7208 Appendix A.4's per-user exists: record.
func TestSPFMacros(t *testing.T) {
	_, res := newZone(t,
		txtRecord("example.com", "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all"),
		"1.2.0.192.someuser._spf.example.com. 600 IN A 127.0.0.2",
	)
	ip := netip.MustParseAddr("192.0.2.1")
	if got := CheckSPF(context.Background(), res, ip, "h.example.net", "someuser@example.com"); got.Status != Pass {
		t.Errorf("someuser: %+v", got)
	}
	if got := CheckSPF(context.Background(), res, ip, "h.example.net", "other@example.com"); got.Status != Fail {
		t.Errorf("other: %+v", got)
	}
}

// TestSPFResults covers every result, the identities and DNS failures.
func TestSPFResults(t *testing.T) {
	var chain []string
	for i := range 11 {
		chain = append(chain, txtRecord(fmt.Sprintf("l%d.test", i), fmt.Sprintf("v=spf1 include:l%d.test -all", i+1)))
	}
	srv, res := newZone(t, append(chain,
		txtRecord("pass.test", "v=spf1 ip4:192.0.2.1 ip6:2001:db8::/32 -all"),
		txtRecord("soft.test", "v=spf1 ip4:192.0.2.1 ~all"),
		txtRecord("neutral.test", "v=spf1 ip4:192.0.2.1 ?all"),
		txtRecord("empty.test", "v=spf1"),
		txtRecord("two.test", "v=spf1 -all"),
		txtRecord("two.test", "v=spf1 +all"),
		txtRecord("other.test", "google-site-verification=abc"),
		txtRecord("bad.test", "v=spf1 ip4:300.0.0.1 -all"),
		txtRecord("unknown.test", "v=spf1 frobnicate -all"),
		txtRecord("inc.test", "v=spf1 include:pass.test -all"),
		txtRecord("incnone.test", "v=spf1 include:nothing.test -all"),
		txtRecord("redir.test", "v=spf1 redirect=pass.test"),
		txtRecord("incfail.test", "v=spf1 include:servfail.test -all"),
		txtRecord("servfail.test", "v=spf1 -all"),
		txtRecord("slow.test", "v=spf1 -all"),
		txtRecord("mxslow.test", "v=spf1 mx -all"),
		"mxslow.test. 300 IN MX 10 mx.slow.test.",
		txtRecord("helo.example.test", "v=spf1 ip4:192.0.2.1 -all"),
		txtRecord("l11.test", "v=spf1 ip4:192.0.2.1 -all"),
		txtRecord("void.test", "v=spf1 a:n1.test a:n2.test a:n3.test ip4:192.0.2.1 -all"),
	)...)
	srv.SetFault("servfail.test", dnstest.ServFail)
	srv.SetFault("slow.test", dnstest.Drop)
	srv.SetFault("mx.slow.test", dnstest.Drop)
	v4, v6, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::25"), netip.MustParseAddr("198.51.100.1")

	cases := []struct {
		name     string
		ip       netip.Addr
		helo     string
		from     string
		want     Status
		identity string
		domain   string
	}{
		{"pass ip4", v4, "x.test", "user@pass.test", Pass, "mailfrom", "pass.test"},
		{"pass ip6", v6, "x.test", "user@pass.test", Pass, "mailfrom", "pass.test"},
		{"IPv4-mapped IPv6 client", netip.MustParseAddr("::ffff:192.0.2.1"), "x.test", "user@pass.test", Pass, "mailfrom", "pass.test"},
		{"fail", other, "x.test", "user@pass.test", Fail, "mailfrom", "pass.test"},
		{"domain case and dot", v4, "x.test", "user@PASS.Test.", Pass, "mailfrom", "pass.test"},
		{"angle brackets", v4, "x.test", "<user@pass.test>", Pass, "mailfrom", "pass.test"},
		{"softfail", other, "x.test", "u@soft.test", SoftFail, "mailfrom", "soft.test"},
		{"neutral", other, "x.test", "u@neutral.test", Neutral, "mailfrom", "neutral.test"},
		{"empty record is neutral", other, "x.test", "u@empty.test", Neutral, "mailfrom", "empty.test"},
		{"no record", v4, "x.test", "u@other.test", None, "mailfrom", "other.test"},
		{"NXDOMAIN", v4, "x.test", "u@nx.test", None, "mailfrom", "nx.test"},
		{"two records", v4, "x.test", "u@two.test", PermError, "mailfrom", "two.test"},
		{"bad ip4", v4, "x.test", "u@bad.test", PermError, "mailfrom", "bad.test"},
		{"unknown mechanism", v4, "x.test", "u@unknown.test", PermError, "mailfrom", "unknown.test"},
		{"include pass", v4, "x.test", "u@inc.test", Pass, "mailfrom", "inc.test"},
		{"include of none", v4, "x.test", "u@incnone.test", PermError, "mailfrom", "incnone.test"},
		{"redirect", v4, "x.test", "u@redir.test", Pass, "mailfrom", "redir.test"},
		{"include SERVFAIL", v4, "x.test", "u@incfail.test", TempError, "mailfrom", "incfail.test"},
		{"SERVFAIL", v4, "x.test", "u@servfail.test", TempError, "mailfrom", "servfail.test"},
		{"timeout", v4, "x.test", "u@slow.test", TempError, "mailfrom", "slow.test"},
		{"MX host timeout", v4, "x.test", "u@mxslow.test", TempError, "mailfrom", "mxslow.test"},
		{"11 lookups", v4, "x.test", "u@l0.test", PermError, "mailfrom", "l0.test"},
		{"10 lookups", v4, "x.test", "u@l1.test", Pass, "mailfrom", "l1.test"},
		{"3 void lookups", v4, "x.test", "u@void.test", PermError, "mailfrom", "void.test"},
		{"null sender: HELO", v4, "helo.example.test", "", Pass, "helo", "helo.example.test"},
		{"null sender: HELO fails", other, "helo.example.test", "", Fail, "helo", "helo.example.test"},
		{"no domain: HELO", v4, "helo.example.test", "postmaster", Pass, "helo", "helo.example.test"},
		{"null sender, address literal HELO", v4, "[192.0.2.1]", "", None, "helo", "[192.0.2.1]"},
		{"null sender, no HELO", v4, "", "", None, "helo", ""},
		{"single-label domain", v4, "x.test", "u@localhost", None, "mailfrom", "localhost"},
		{"no client address", netip.Addr{}, "x.test", "u@pass.test", PermError, "mailfrom", "pass.test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckSPF(context.Background(), res, tc.ip, tc.helo, tc.from)
			if got.Status != tc.want || got.Identity != tc.identity || got.Domain != tc.domain {
				t.Errorf("%+v, want %s identity %s domain %s", got, tc.want, tc.identity, tc.domain)
			}
			if got.Status != Pass && got.Status != None && got.Reason == "" && got.Status != Fail && got.Status != SoftFail {
				t.Errorf("no reason for %s", got.Status)
			}
		})
	}
}

// TestSPFContext: the caller's deadline bounds the evaluation.
func TestSPFContext(t *testing.T) {
	srv, res := newZone(t, txtRecord("slow.test", "v=spf1 -all"))
	srv.SetDelay("slow.test", time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	got := CheckSPF(ctx, res, netip.MustParseAddr("192.0.2.1"), "h.test", "u@slow.test")
	if got.Status != TempError || time.Since(start) > 500*time.Millisecond {
		t.Errorf("%+v after %v", got, time.Since(start))
	}
	if !strings.Contains(got.Reason, "slow.test") {
		t.Errorf("reason %q", got.Reason)
	}
}
