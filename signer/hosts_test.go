package signer

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// internalHosts is an InternalHosts file in OpenDKIM syntax.
const internalHosts = `# InternalHosts
mail.example.com
.example.com
!bad.example.com
!.outside.example.com
good.outside.example.com

10.0.0.0/8
!10.0.0.5
192.0.2.1            # a single address
[198.51.100.1]
[203.0.113.0]/24
172.16.0.0/12
!172.16.1.0/24
172.16.1.7
2001:db8::/32
!2001:db8::bad
::1
::ffff:192.0.2.128/121
::ffff:10.0.0.0/90
Host.Upper.Test
`

func TestHostListMatch(t *testing.T) {
	path := writeFile(t, t.TempDir(), "InternalHosts", internalHosts, 0o644)
	h := &HostList{}
	if err := h.AddFile(path); err != nil {
		t.Fatal(err)
	}
	// ::ffff:10.0.0.0/90 has host bits set: ignored, as OpenDKIM does.
	if h.Len() != 18 || len(h.Warnings()) != 1 {
		t.Fatalf("Len = %d, want 18; warnings %q", h.Len(), h.Warnings())
	}
	none := netip.Addr{}
	outside := netip.MustParseAddr("198.51.100.99")
	tests := []struct {
		name, host string
		ip         netip.Addr
		want       bool
		entry      string
	}{
		{"exact host", "mail.example.com", outside, true, "mail.example.com"},
		{"host below a .domain entry", "desk.example.com", outside, true, ".example.com"},
		{"deep below a .domain entry", "a.b.c.example.com", outside, true, ".example.com"},
		{".domain does not match the domain itself", "example.com", outside, false, ""},
		{"negated host", "bad.example.com", outside, false, ""},
		{"negated host, any case, trailing dot", "BAD.Example.COM.", outside, false, ""},
		{"below a negated host name", "x.bad.example.com", outside, true, ".example.com"},
		{"negated .domain", "x.outside.example.com", outside, false, ""},
		{"host inside a negated .domain", "good.outside.example.com", outside, true, "good.outside.example.com"},
		{"negated host from an internal network", "bad.example.com", netip.MustParseAddr("10.1.1.1"), true, "10.0.0.0/8"},
		{"host entries are case-insensitive", "host.upper.test", outside, true, "host.upper.test"},
		{"unresolved client name", "[10.1.2.3]", netip.MustParseAddr("10.1.2.3"), true, "10.0.0.0/8"},
		{"unresolved client name is not a host entry", "[192.0.2.1]", outside, false, ""},
		{"unresolved client name, no address", "[mail.example.com]", none, false, ""},
		{"no name, no address", "", none, false, ""},
		{"network", "", netip.MustParseAddr("10.200.0.1"), true, "10.0.0.0/8"},
		{"negated address in a network", "", netip.MustParseAddr("10.0.0.5"), false, "10.0.0.5/32"},
		{"neighbour of the negated address", "", netip.MustParseAddr("10.0.0.6"), true, "10.0.0.0/8"},
		{"single address", "", netip.MustParseAddr("192.0.2.1"), true, "192.0.2.1/32"},
		{"next to a single address", "", netip.MustParseAddr("192.0.2.2"), false, ""},
		{"[address]", "", netip.MustParseAddr("198.51.100.1"), true, "198.51.100.1/32"},
		{"[network]/bits", "", netip.MustParseAddr("203.0.113.77"), true, "203.0.113.0/24"},
		{"most specific: address beats negated /24", "", netip.MustParseAddr("172.16.1.7"), true, "172.16.1.7/32"},
		{"most specific: negated /24 beats /12", "", netip.MustParseAddr("172.16.1.8"), false, "172.16.1.0/24"},
		{"most specific: /12", "", netip.MustParseAddr("172.16.2.1"), true, "172.16.0.0/12"},
		{"IPv6 network", "", netip.MustParseAddr("2001:db8:1::25"), true, "2001:db8::/32"},
		{"negated IPv6 address", "", netip.MustParseAddr("2001:db8::bad"), false, "2001:db8::bad/128"},
		{"IPv6 loopback", "", netip.MustParseAddr("::1"), true, "::1/128"},
		{"other IPv6", "", netip.MustParseAddr("2001:db9::1"), false, ""},
		// vouch unmaps IPv4-mapped client addresses (OpenDKIM would only
		// compare their IPv6 text): they match IPv4 entries.
		{"IPv4-mapped client in a network", "", netip.MustParseAddr("::ffff:10.1.2.3"), true, "10.0.0.0/8"},
		{"IPv4-mapped client, negated address", "", netip.MustParseAddr("::ffff:10.0.0.5"), false, "10.0.0.5/32"},
		{"IPv4-mapped entry", "", netip.MustParseAddr("192.0.2.200"), true, "192.0.2.128/25"},
		{"IPv4-mapped entry, mapped client", "", netip.MustParseAddr("::ffff:192.0.2.130"), true, "192.0.2.128/25"},
		// ::ffff:10.0.0.0/90 is shorter than the mapped prefix: it must not
		// turn into an invalid prefix that matches every IPv4 client.
		{"short IPv4-mapped prefix", "", netip.MustParseAddr("198.51.100.77"), false, ""},
		{"outsider", "mail.remote.test", outside, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, entry := h.Match(tc.host, tc.ip)
			if got != tc.want || entry != tc.entry {
				t.Fatalf("Match(%q, %v) = %v, %q; want %v, %q", tc.host, tc.ip, got, entry, tc.want, tc.entry)
			}
		})
	}

	var nilList *HostList
	if ok, _ := nilList.Match("mail.example.com", netip.MustParseAddr("127.0.0.1")); ok {
		t.Fatal("a nil list matched")
	}
}

func TestHostListSources(t *testing.T) {
	h, err := ParseHostEntries("signing.internal_hosts", []string{"127.0.0.1", "::1", " 10.0.0.0/8 "})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddFile("csl:192.0.2.0/24, .example.com"); err != nil {
		t.Fatal(err)
	}
	if h.Len() != 5 {
		t.Fatalf("Len = %d", h.Len())
	}
	for _, c := range []struct {
		host string
		ip   string
	}{{"", "127.0.0.1"}, {"", "::1"}, {"", "10.9.9.9"}, {"", "192.0.2.9"}, {"a.example.com", "198.51.100.1"}} {
		if ok, _ := h.Match(c.host, netip.MustParseAddr(c.ip)); !ok {
			t.Errorf("%s %s does not match", c.host, c.ip)
		}
	}
	// An empty list matches nothing.
	empty, err := ParseHostEntries("x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := empty.Match("localhost", netip.MustParseAddr("127.0.0.1")); ok {
		t.Fatal("empty list matched")
	}
}

// TestHostListIgnored: lines OpenDKIM runs with but that never match
// (test/opendkim_test.go shows it side by side) load with a warning that
// names file and line, and match nothing.
func TestHostListIgnored(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, content, want string }{
		{"prefix too long", "127.0.0.1\n\n10.0.0.0/33\n", `:3: "10.0.0.0/33" matches no client and is ignored, as OpenDKIM ignores it: not a network`},
		{"bad address in network", "# c\n300.1.2.3/8\n", ":2: \"300.1.2.3/8\" matches no client"},
		{"host bits set", "10.1.2.3/8\n", ":1: \"10.1.2.3/8\" matches no client and is ignored, as OpenDKIM ignores it: host bits are set (the network is 10.0.0.0/8)"},
		{"wildcard", "*.example.com\n", `:1: "*.example.com" matches no client and is ignored, as OpenDKIM ignores it: host names are compared literally, without wildcards: ".example.com" matches every name below example.com`},
		{"not a name", "ok.example.com\nbad_host!\n", `:2: "bad_host!" matches no client and is ignored, as OpenDKIM ignores it: not a host name`},
		{"lone negation", "!\n", `:1: "!" matches no client and is ignored, as OpenDKIM ignores it: it is empty`},
		{"bad IPv6 network", "2001:db8::/129\n", ":1: \"2001:db8::/129\" matches no client"},
		{"garbage after bits", "10.0.0.0/8x\n", ":1: \"10.0.0.0/8x\" matches no client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_"), tc.content, 0o644)
			// Through New, as the milter loads it.
			s, warnings, err := New(Config{InternalHostsFile: path, Headers: []string{"From"}})
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !slices.ContainsFunc(warnings, func(w string) bool { return strings.HasPrefix(w, path+tc.want) }) {
				t.Fatalf("warnings %q, want one starting %q", warnings, path+tc.want)
			}
			for _, ip := range []string{"10.1.2.3", "10.0.0.1", "2001:db8::1", "192.0.2.1"} {
				if ok, e := s.Internal("x.example.com", netip.MustParseAddr(ip)); ok && e != "127.0.0.1/32" {
					t.Errorf("%s matches %s", ip, e)
				}
			}
		})
	}
	h, err := ParseHostEntries("signing.internal_hosts", []string{"10.0.0.0/8", "a b"})
	if err != nil || len(h.Warnings()) != 1 || !strings.HasPrefix(h.Warnings()[0], `signing.internal_hosts[1]: "a b" matches no client`) {
		t.Fatalf("ParseHostEntries: %v %q", err, h.Warnings())
	}
	if err := (&HostList{}).AddFile("refile:/x"); err == nil {
		t.Fatal("refile: host list accepted")
	}
	if err := (&HostList{}).AddFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}

// FuzzHostEntry adds one InternalHosts entry and checks: it is used or
// warned about, never both; an address entry matches its own address; a
// "!" entry alone never makes anything match.
func FuzzHostEntry(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "!10.0.0.5", "192.0.2.1", "[198.51.100.1]", "[203.0.113.0]/24", "2001:db8::/32", "::ffff:10.1.2.3", ".example.com", "mail.example.com", "*.example.com", "10.1.2.3/8", "!", "a b", "fe80::1%eth0"} {
		f.Add(s, "mail.example.com", []byte{10, 0, 0, 5})
	}
	f.Fuzz(func(t *testing.T, entry, host string, ipBytes []byte) {
		h, err := ParseHostEntries("fuzz", []string{entry})
		if err != nil {
			t.Fatal(err)
		}
		if h.Len()+len(h.Warnings()) != 1 {
			t.Fatalf("%q: %d used, warnings %q", entry, h.Len(), h.Warnings())
		}
		ip, _ := netip.AddrFromSlice(ipBytes)
		if h.Len() == 1 {
			e := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(entry), "["), "]")
			if own, err := netip.ParseAddr(e); err == nil {
				if ok, _ := h.Match("", own); !ok {
					t.Fatalf("%q does not match its own address %s", entry, own)
				}
			}
		}
		neg, _ := ParseHostEntries("fuzz", []string{"!" + strings.TrimLeft(entry, " \t")})
		if ok, e := neg.Match(host, ip); ok {
			t.Fatalf("!%q matches %q %s (entry %s)", entry, host, ip, e)
		}
	})
}
