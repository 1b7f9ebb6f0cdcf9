package domaincheck

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"vouch/internal/dnstest"
	"vouch/internal/resolver"
)

// TestReachable: any answer from a server, even an error rcode, counts as
// reachable (the checks then say what each lookup got); silence and a
// refused connection do not.
func TestReachable(t *testing.T) {
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().String()
	closed.Close()
	tests := []struct {
		name      string
		fault     dnstest.Fault
		addr      string // instead of the test server
		reachable bool
	}{
		{"answers", dnstest.None, "", true},
		{"SERVFAIL", dnstest.ServFail, "", true},
		{"REFUSED", dnstest.Refused, "", true},
		{"silent", dnstest.Drop, "", false},
		{"nothing listens", dnstest.None, closedAddr, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnstest.New(t)
			srv.SetFault(".", tc.fault)
			addr := srv.Addr
			if tc.addr != "" {
				addr = tc.addr
			}
			res, err := resolver.New(resolver.Config{Servers: []string{addr}, Timeout: 200 * time.Millisecond, Attempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := reachable(context.Background(), res); (err == nil) != tc.reachable {
				t.Fatalf("reachable: %v, want %v", err, tc.reachable)
			}
		})
	}
}

// TestDMARCItem: the DMARC finding for each way a policy can be published
// or broken, as verify.LookupDMARC (the daemon's own discovery) finds it.
func TestDMARCItem(t *testing.T) {
	srv := dnstest.New(t,
		`_dmarc.good.test. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:d@good.test"`,
		`_dmarc.two.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`_dmarc.two.test. 300 IN TXT "v=DMARC1; p=none"`,
		`_dmarc.bad.test. 300 IN TXT "v=DMARC1; p=bogus"`,
		`_dmarc.other.test. 300 IN TXT "some verification token"`,
		`_dmarc.org.test. 300 IN TXT "v=DMARC1; p=reject; sp=none; rua=mailto:d@org.test"`,
	)
	srv.SetFault("_dmarc.down.test", dnstest.ServFail)
	res, err := resolver.New(resolver.Config{Servers: []string{srv.Addr}, Timeout: 200 * time.Millisecond, Attempts: 1, CacheSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		domain, status, message, found string
	}{
		{"good.test", OK, "policy reject.", "v=DMARC1; p=reject; rua=mailto:d@good.test"},
		{"two.test", Fail, "_dmarc.two.test has 2 DMARC records", ""},
		{"bad.test", Fail, "no valid p= tag", ""},
		{"other.test", Fail, "no DMARC record", ""},
		{"none.test", Fail, "no DMARC record", ""},
		{"sub.org.test", Warn, "the organizational domain's (_dmarc.org.test) applies, policy none", "v=DMARC1; p=reject; sp=none; rua=mailto:d@org.test"},
		{"down.test", Warn, "could not look it up", ""},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			c := &checker{ctx: context.Background(), res: res, domain: tc.domain}
			c.checkDMARC()
			it := c.items[0]
			if it.Check != "dmarc" || it.Status != tc.status || !strings.Contains(it.Message, tc.message) || it.Found != tc.found {
				t.Fatalf("%+v, want %s %q found %q", it, tc.status, tc.message, tc.found)
			}
		})
	}
}
