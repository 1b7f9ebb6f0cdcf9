package signer

import (
	"os"
	"path/filepath"
	"testing"

	"vouch/internal/opensslrsa"
)

// In the fast build (-tags openssl) every loaded RSA key signs through
// OpenSSL, Ed25519 keys through Go; in other builds every key signs
// through Go. A key loaded without its OpenSSL signer would silently make
// the fast build slow.
func TestLoadedKeysSignThroughOpenSSL(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		alg      string
		wantFast bool
	}{
		{"rsa", opensslrsa.Available},
		{"ed25519", false},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			_, pemData, err := GenerateKey(tc.alg, 0)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tc.alg+".private")
			if err := os.WriteFile(path, pemData, 0o600); err != nil {
				t.Fatal(err)
			}
			inline, warnings, err := loadInlineKey("example.com", "sel", path, "test", false)
			if err != nil || len(warnings) > 0 {
				t.Fatalf("loadInlineKey: %v %v", err, warnings)
			}
			// a KeyTable row, with the key in a file and inline
			fromFile, warning, err := loadKeyData(keyRow{name: "k", domain: "example.com", selector: "sel", keydata: path, source: "KeyTable:1"}, "example.com", false)
			if err != nil || warning != "" {
				t.Fatalf("loadKeyData(file): %v %q", err, warning)
			}
			inTable, warning, err := loadKeyData(keyRow{name: "k", domain: "example.com", selector: "sel", keydata: string(pemData), source: "KeyTable:2"}, "example.com", false)
			if err != nil || warning != "" {
				t.Fatalf("loadKeyData(inline): %v %q", err, warning)
			}
			for _, k := range []*Key{inline, fromFile, inTable} {
				if got := k.fast != nil; got != tc.wantFast {
					t.Errorf("%s: OpenSSL signer: %v, want %v (opensslrsa.Available = %v)", k.Source, got, tc.wantFast, opensslrsa.Available)
				}
				if k.signWith() == nil {
					t.Errorf("%s: no signer", k.Source)
				}
			}
		})
	}
}
