package signer

import (
	"fmt"
	"strings"
	"testing"
)

// TestNewReportsEveryProblem: one call of New (one run of serve -check)
// names every missing or unsafe key and every bad table line, not only
// the first.
func TestNewReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir, "ok.private")
	writeFile(t, dir, "open.private", string(pkcs8PEM(t, testEdKey(t))), 0o644)
	twoMissing := writeFile(t, dir, "KeyTableTwoMissing", fmt.Sprintf("a a.test:s:%s/a.private\nb b.test:s:%s/b.private\n", dir, dir), 0o644)
	badLine := writeFile(t, dir, "KeyTableBadLine", fmt.Sprintf("ok ok.test:s:%s/ok.private\nbroken nocolons\n", dir), 0o644)
	stMissing := writeFile(t, dir, "SigningTableMissing", "ok.test ok\nbroken.test broken\nother.test nope\n", 0o644)
	all := writeFile(t, dir, "KeyTableAll", fmt.Sprintf("a a.test:s:%s/a.private\nb b.test:s:%s/b.private\nopen o.test:s:%s/open.private\nbroken x\n", dir, dir, dir), 0o644)
	stAll := writeFile(t, dir, "SigningTableAll", "a.test a\n*.test\nc.test nope\n", 0o644)

	tests := []struct {
		name string
		cfg  Config
		want []string
		not  []string
	}{
		{"two missing keys", Config{KeyTable: twoMissing, SigningTable: "csl:a.test=a,b.test=b"},
			[]string{twoMissing + `:1: key table entry "a"`, twoMissing + `:2: key table entry "b"`}, nil},
		{"bad key table line and signing table naming a missing key", Config{KeyTable: badLine, SigningTable: stMissing},
			[]string{badLine + `:2: key table entry "broken": want NAME DOMAIN:SELECTOR:KEYFILE`, stMissing + `:3: signing table entry "other.test" names key "nope"`},
			// the broken line's name is known: no second report for it
			[]string{`names key "broken"`}},
		{"two missing inline keys", Config{Keys: []InlineKey{{Domain: "a.test", Selector: "s", PrivateKey: dir + "/a.private"}, {Domain: "b.test", Selector: "s", PrivateKey: dir + "/b.private"}}},
			[]string{"signing.key[0]: ", dir + "/a.private", "signing.key[1]: ", dir + "/b.private"}, nil},
		{"everything at once", Config{KeyTable: all, SigningTable: stAll, RequireSafeKeys: true,
			// (a bad InternalHosts entry is a warning, as OpenDKIM ignores it)
			Keys: []InlineKey{{Domain: "c.test", Selector: "s", PrivateKey: dir + "/c.private"}}},
			[]string{all + `:1: key table entry "a"`, all + `:2: key table entry "b"`, all + `:3: key table entry "open"`, "mode 0644",
				all + `:4: key table entry "broken"`, stAll + `:2: signing table entry "*.test" has no key name`,
				stAll + `:3: signing table entry "c.test" names key "nope"`, "signing.key[0]: "}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Headers = []string{"From"}
			_, _, err := New(tc.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error has %q:\n%v", n, err)
				}
			}
		})
	}
}
