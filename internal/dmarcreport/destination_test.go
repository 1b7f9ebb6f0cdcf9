package dmarcreport

import (
	"context"
	"testing"
	"time"

	"vouch/internal/dnstest"
	"vouch/internal/resolver"
)

// testResolver is a resolver that asks srv only, quickly.
func testResolver(t testing.TB, srv *dnstest.Server) *resolver.Resolver {
	t.Helper()
	res, err := resolver.New(resolver.Config{Servers: []string{srv.Addr}, Timeout: 200 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestDestinationAllowed(t *testing.T) {
	srv := dnstest.New(t,
		`example.com._report._dmarc.reports.test. 300 IN TXT "v=DMARC1"`,
		`example.com._report._dmarc.spaced.test. 300 IN TXT "v = DMARC1 ; rua=mailto:x@spaced.test"`,
		`example.com._report._dmarc.other.test. 300 IN TXT "v=spf1 -all"`,
		`example.com._report._dmarc.dmarc2.test. 300 IN TXT "v=DMARC10"`,
		`sub.example.com._report._dmarc.reports.test. 300 IN TXT "v=DMARC1"`,
		`x._report._dmarc.nodata.test. 300 IN A 192.0.2.1`,
	)
	srv.SetFault("example.com._report._dmarc.servfail.test", dnstest.ServFail)
	srv.SetFault("example.com._report._dmarc.silent.test", dnstest.Drop)
	res := testResolver(t, srv)
	tests := []struct {
		policy, rua string
		allowed     bool
		temporary   bool
	}{
		{"example.com", "example.com", true, false},      // same domain: no lookup
		{"mail.example.com", "example.com", true, false}, // same organizational domain
		{"example.com", "reports.example.com", true, false},
		{"example.com", "reports.test", true, false}, // v=DMARC1 published
		{"EXAMPLE.com.", "Reports.Test", true, false},
		{"example.com", "spaced.test", true, false},
		{"sub.example.com", "reports.test", true, false}, // asks for the policy domain itself
		{"other.example.com", "reports.test", false, false},
		{"example.com", "other.test", false, false}, // a TXT that is not DMARC
		{"example.com", "dmarc2.test", false, false},
		{"example.com", "nowhere.test", false, false}, // NXDOMAIN
		{"x", "nodata.test", false, false},            // NODATA
		{"example.com", "servfail.test", false, true},
		{"example.com", "silent.test", false, true}, // timeout
	}
	for _, tt := range tests {
		ok, err := DestinationAllowed(context.Background(), res, tt.policy, tt.rua)
		if ok != tt.allowed || (err != nil) != tt.temporary || (err != nil && !resolver.IsTemporary(err)) {
			t.Errorf("DestinationAllowed(%s, %s) = %v, %v; want %v, temporary %v", tt.policy, tt.rua, ok, err, tt.allowed, tt.temporary)
		}
	}
}
