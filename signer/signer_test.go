package signer

import (
	"path/filepath"
	"strings"
	"testing"

	"vouch/internal/mailtext"
)

// percentSigner is OpenDKIM's multi-domain KeyTable row from issue 12,
// "wild %:sel:KEYS/%/sel.private" with "*" in the signing table, in a
// temporary directory: KEYS is base/a/b/c/keys, so that both traversals
// of the issue land inside base, on planted keys that would load.
func percentSigner(t *testing.T) *Signer {
	t.Helper()
	base := t.TempDir()
	keys := filepath.Join(base, "a", "b", "c", "keys")
	writeKey(t, keys, "example.com/sel.private")
	writeKey(t, base, "a/b/c/planted/x/sel.private")
	writeKey(t, base, "somewhere/x/sel.private")
	kt := writeFile(t, base, "KeyTable", "wild %:sel:"+keys+"/%/sel.private\n", 0o644)
	st := writeFile(t, base, "SigningTable", "* wild\n", 0o644)
	s, _, err := New(Config{KeyTable: kt, SigningTable: st, Headers: []string{"From"}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPercentPathTraversal: a trusted sender wrote From: <a@../planted/x>
// and got a message signed d=../planted/x with a key from outside the key
// directory (issue 12). The From is refused, Lookup refuses the domain
// before any key path is made, and loadKeyData refuses it again.
func TestPercentPathTraversal(t *testing.T) {
	s := percentSigner(t)
	reqs, err := s.Lookup("a", "Example.COM")
	if err != nil || len(reqs) != 1 || reqs[0].Domain != "example.com" || reqs[0].Key.Selector != "sel" {
		t.Fatalf("legitimate From domain: %+v, %v", reqs, err)
	}
	for _, domain := range []string{"../planted/x", "../../../../somewhere/x", "example.com/../../planted/x", "%", "", strings.Repeat("a.", 20000) + "com"} {
		if l, d, err := FromAddress([]mailtext.Header{{Name: "From", Value: " <a@" + domain + ">"}}); err == nil {
			t.Errorf("%.40q: FromAddress gave %q@%q", domain, l, d)
		}
		reqs, err := s.Lookup("a", domain)
		if err == nil || len(reqs) != 0 || strings.Contains(err.Error(), "sel.private") || len(err.Error()) > 400 {
			t.Errorf("%.40q: Lookup gave %+v, %.300v", domain, reqs, err)
		}
		if domain == "" {
			continue // loadRow's "at start"
		}
		if k, _, err := loadRow(s.rows["wild"], domain, false); err == nil || !strings.Contains(err.Error(), "not substituted") {
			t.Errorf("%.40q: loadRow gave %+v, %.300v", domain, k, err)
		}
	}
	if len(s.lazy) != 1 {
		t.Errorf("keys loaded for %d From domains, want 1 (example.com)", len(s.lazy))
	}
}

// TestLookupBounded: a 40 KB From domain made signingKeys build 40,004
// lookup keys (434 MB allocated in 1.2 s, issue 12). The allocations of
// the signing path no longer grow with the From field.
func TestLookupBounded(t *testing.T) {
	s := percentSigner(t)
	long := strings.Repeat("a.", 20000) + "example.com"
	from := []mailtext.Header{{Name: "From", Value: " <u@" + long + ">"}}
	allocs := testing.AllocsPerRun(5, func() {
		if l, d, err := FromAddress(from); err == nil {
			s.Lookup(l, d)
		}
		s.Lookup("u", long)
	})
	t.Logf("%.0f allocations for FromAddress and Lookup with a 40 KB From domain", allocs)
	if allocs > 200 {
		t.Errorf("%.0f allocations for a 40 KB From domain, want at most 200", allocs)
	}
	// The longest valid domain: 127 labels.
	longest := strings.Repeat("a.", 125) + "com"
	if len(longest) > 253 || !mailtext.ValidDomain(longest) {
		t.Fatal(len(longest))
	}
	if n := len(signingKeys(strings.Repeat("l", maxAddress-1-len(longest)), longest)); n > 256 {
		t.Errorf("%d signing-table keys for the longest valid address", n)
	}
}
