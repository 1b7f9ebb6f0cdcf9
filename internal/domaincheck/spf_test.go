package domaincheck

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"vouch/internal/resolver"
)

func TestSPFCIDRAndTerms(t *testing.T) {
	for cidr, ok := range map[string]bool{"": true, "/24": true, "/32": true, "/33": false, "//64": true, "/24//64": true, "//129": false, "/x": false, "/024": false} {
		if validSPFCIDR(cidr) != ok {
			t.Errorf("validSPFCIDR(%q) = %v", cidr, !ok)
		}
	}
	for term, ok := range map[[2]string]bool{
		{"ip4", "192.0.2.1"}: true, {"ip4", "192.0.2.0/24"}: true, {"ip4", "2001:db8::1"}: false,
		{"ip6", "2001:db8::/32"}: true, {"ip6", "192.0.2.1"}: false, {"ip4", "300.1.1.1"}: false,
	} {
		if validIPTerm(term[0], term[1]) != ok {
			t.Errorf("validIPTerm(%v) = %v", term, !ok)
		}
	}
}

// lookupTerms is an upper bound, counted independently of the walker, on
// the DNS lookups one SPF record costs (RFC 7208 §4.6.4): terms named
// include, exists, a, mx or ptr, and the redirect= modifiers.
func lookupTerms(record string) int {
	n := 0
	for _, f := range strings.Fields(record)[1:] {
		name := strings.ToLower(strings.TrimLeft(f, "+-~?"))
		if i := strings.IndexAny(name, ":/="); i >= 0 {
			name = name[:i]
		}
		if slices.Contains([]string{"include", "exists", "a", "mx", "ptr", "redirect"}, name) {
			n++
		}
	}
	return n
}

type walkResult struct {
	all            string
	lookups        int
	macros         bool
	errs, warns    []string
	temp           string
	fetchedTargets int
}

// walkWith walks record for example.test, with every include and redirect
// target answering answer(name).
func walkWith(record string, answer func(name string) ([]string, resolver.Status, error)) walkResult {
	w := &spfWalker{ctx: context.Background(), seen: map[string]bool{"example.test": true},
		txt: func(_ context.Context, name string) ([]string, resolver.Status, error) { return answer(name) }}
	all := w.walk("example.test", record, 0)
	return walkResult{all, w.lookups, w.macros, w.errs, w.warns, w.temp, len(w.seen) - 1}
}

func nxdomain(string) ([]string, resolver.Status, error) { return nil, resolver.NXDomain, nil }

func TestSPFWalk(t *testing.T) {
	zone := map[string]string{
		"a.test":     "v=spf1 a mx -all",
		"b.test":     "v=spf1 include:a.test ?all",
		"loop.test":  "v=spf1 include:loop2.test",
		"loop2.test": "v=spf1 include:loop.test",
	}
	answer := func(name string) ([]string, resolver.Status, error) {
		if r, ok := zone[name]; ok {
			return []string{r}, resolver.Found, nil
		}
		if name == "down.test" {
			return nil, 0, &resolver.TempError{Name: name, Type: "TXT", Reason: "SERVFAIL"}
		}
		return nil, resolver.NXDomain, nil
	}
	tests := []struct {
		record  string
		all     string
		lookups int
		err     string // in the first error, or the temporary failure
	}{
		{"v=spf1 -all", "-", 0, ""},
		{"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all", "~", 0, ""},
		{"v=spf1 include:b.test -all", "-", 4, ""},
		{"v=spf1 redirect=a.test", "-", 3, ""},
		{"v=spf1 a/24//64 mx:example.test/28 -all", "-", 2, ""},
		{"v=spf1 include:loop.test -all", "-", 3, "loops back"},
		{"v=spf1 include:none.test -all", "-", 1, "has no SPF record"},
		{"v=spf1 include:down.test -all", "-", 1, "SERVFAIL"},
		{"v=spf1 exists:%{i}.x.test -all", "-", 1, ""},
		{"v=spf1 ip4:300.1.1.1 -all", "-", 0, "bad address"},
		{"v=spf1 a/33 -all", "-", 1, "bad prefix length"},
		{"v=spf1 foo -all", "-", 0, "unknown term"},
		{"v=spf1 include -all", "-", 1, "needs a domain"},
		{"v=spf1 all:x", "+", 0, "bad term"},
		{"v=spf1 redirect=a.test redirect=b.test", "?", 4, "more than one redirect="}, // the last one is followed
	}
	for _, tc := range tests {
		r := walkWith(tc.record, answer)
		got := r.temp
		if len(r.errs) > 0 {
			got = r.errs[0]
		}
		if r.all != tc.all || r.lookups != tc.lookups || !strings.Contains(got, tc.err) || tc.err == "" && got != "" {
			t.Errorf("%q: all %q, %d lookups, error %q; want %q, %d, %q", tc.record, r.all, r.lookups, got, tc.all, tc.lookups, tc.err)
		}
	}
}

// FuzzSPFWalk: the walker never panics; the lookups it counts never
// exceed the lookup terms of the records it read (the record itself once,
// plus once per include or redirect target it fetched, every target here
// answering with the same record); and the record read with its terms
// re-joined by single spaces walks the same.
func FuzzSPFWalk(f *testing.F) {
	for _, s := range []string{
		"v=spf1 -all",
		"v=spf1 ip4:192.0.2.1 include:_spf.example.test -all",
		"v=spf1 include:a.test include:b.test ~all",
		"v=spf1 a mx ptr exists:x.test include:c.test -all",
		"v=spf1 a mx a:y.test mx:z.test/24 -all",
		"v=spf1 redirect=example.test",
		"v=spf1 redirect=a.test redirect=b.test",
		"v=spf1 a/24//64 ip6:2001:db8::/32 ?all",
		"v=spf1 exists:%{i}.%{h}.x.test ~all exp=explain.test",
		"v=spf1\tinclude:a.test  -all",
		"V=SPF1 +all",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, record string) {
		if len(spfRecords([]string{record})) != 1 {
			return // not an SPF record: the walker is never given it
		}
		same := func(string) ([]string, resolver.Status, error) { return []string{record}, resolver.Found, nil }
		r := walkWith(record, same)
		if max := lookupTerms(record) * (1 + r.fetchedTargets); r.lookups > max {
			t.Fatalf("%q: %d lookups counted, at most %d lookup terms read", record, r.lookups, max)
		}
		flat := walkWith(record, nxdomain)
		if flat.lookups > lookupTerms(record) {
			t.Fatalf("%q: %d lookups counted, %d lookup terms", record, flat.lookups, lookupTerms(record))
		}
		rejoined := strings.Join(strings.Fields(record), " ")
		again := walkWith(rejoined, nxdomain)
		if fmt.Sprint(again) != fmt.Sprint(flat) {
			t.Fatalf("%q and %q walk differently:\n%+v\n%+v", record, rejoined, flat, again)
		}
	})
}
