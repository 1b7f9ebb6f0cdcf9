package netset

import (
	"net/netip"
	"testing"
)

func TestMostSpecificWins(t *testing.T) {
	var s Prefixes[string]
	for p, v := range map[string]string{
		"10.0.0.0/8": "ten", "10.1.0.0/16": "ten-one", "10.1.2.3/32": "host",
		"2001:db8::/32": "doc6", "2001:db8::1/128": "host6", "::ffff:192.0.2.0/120": "mapped",
		"0.0.0.0/0": "any4",
	} {
		s.Set(netip.MustParsePrefix(p), v)
	}
	tests := map[string]string{
		"10.1.2.3": "host", "10.1.9.9": "ten-one", "10.200.0.1": "ten", "8.8.8.8": "any4",
		"::ffff:10.1.2.3": "host", "2001:db8::1": "host6", "2001:db8::2": "doc6", "2001:db9::1": "",
		"192.0.2.7": "mapped",
	}
	for ip, want := range tests {
		got, _, ok := s.Lookup(netip.MustParseAddr(ip))
		if got != want || ok != (want != "") {
			t.Errorf("%s: got %q %v, want %q", ip, got, ok, want)
		}
	}
	if v, ok := s.Get(netip.MustParsePrefix("10.1.2.0/16")); !ok || v != "ten-one" {
		t.Errorf("Get with host bits: %q %v", v, ok)
	}
	if s.Len() != 7 {
		t.Errorf("Len %d", s.Len())
	}
}
