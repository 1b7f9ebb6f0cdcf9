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
			k, warnings, err := loadInlineKey("example.com", "sel", path, "test", false)
			if err != nil || len(warnings) > 0 {
				t.Fatalf("loadInlineKey: %v %v", err, warnings)
			}
			if got := k.fast != nil; got != tc.wantFast {
				t.Errorf("OpenSSL signer: %v, want %v (opensslrsa.Available = %v)", got, tc.wantFast, opensslrsa.Available)
			}
			if k.signWith() == nil {
				t.Error("no signer")
			}
		})
	}
}
