package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestBuildCrypto checks that the binary under test is the build CI means
// to test: .ci/run runs the suite once as plain `go build` (crypto: Go) and
// once as the fast build, GOEXPERIMENT=boringcrypto with -tags=openssl in
// GOFLAGS (crypto: BoringCrypto, RSA signing: OpenSSL ...), so every
// end-to-end test also proves the fast build.
func TestBuildCrypto(t *testing.T) {
	out, err := exec.Command(vouchBin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("vouch version: %v\n%s", err, out)
	}
	want := "crypto: Go"
	if strings.Contains(os.Getenv("GOEXPERIMENT"), "boringcrypto") {
		want = "crypto: BoringCrypto"
	}
	if strings.Contains(os.Getenv("GOFLAGS"), "openssl") {
		want += ", RSA signing: OpenSSL 3"
	} else {
		want += ")"
	}
	if !strings.Contains(string(out), want) {
		t.Fatalf("vouch version = %q, want %q", strings.TrimSpace(string(out)), want)
	}
}
