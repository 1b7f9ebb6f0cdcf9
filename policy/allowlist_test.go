package policy

import (
	"net/netip"
	"strings"
	"testing"

	"vouch/internal/verify"
	"vouch/whitelist"
)

func TestAllowlisted(t *testing.T) {
	list, _, err := whitelist.Parse("allow.dat", strings.NewReader("192.0.2.0/24\npartner.test\n*@vendor.test\n"))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("198.51.100.1")
	tests := []struct {
		name string
		ip   netip.Addr
		r    verify.Results
		line int // 0: not allow-listed
	}{
		{"client IP", netip.MustParseAddr("192.0.2.7"), verify.Results{}, 1},
		{"passing DKIM d=", ip, verify.Results{DKIM: []verify.DKIMResult{{Status: verify.Pass, Domain: "partner.test"}}}, 2},
		{"failing DKIM d= does not count", ip, verify.Results{DKIM: []verify.DKIMResult{{Status: verify.Fail, Domain: "partner.test"}}}, 0},
		{"SPF pass domain", ip, verify.Results{SPF: verify.SPFResult{Status: verify.Pass, Domain: "partner.test", Sender: "x@partner.test"}}, 2},
		{"SPF pass address", ip, verify.Results{SPF: verify.SPFResult{Status: verify.Pass, Domain: "vendor.test", Sender: "x@vendor.test"}}, 3},
		{"SPF softfail does not count", ip, verify.Results{SPF: verify.SPFResult{Status: verify.SoftFail, Domain: "partner.test", Sender: "x@partner.test"}}, 0},
		{"From alone does not count", ip, verify.Results{DMARC: verify.DMARCResult{Status: verify.Fail, FromDomain: "partner.test"}}, 0},
	}
	for _, tc := range tests {
		e, ok := Allowlisted(list, tc.ip, tc.r)
		if ok != (tc.line != 0) || ok && e.Line != tc.line {
			t.Errorf("%s: got %v line %d, want line %d", tc.name, ok, e.Line, tc.line)
		}
	}
	if _, ok := Allowlisted(nil, ip, verify.Results{}); ok {
		t.Error("nil list matched")
	}
}
