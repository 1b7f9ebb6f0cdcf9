//go:build goexperiment.boringcrypto

package main

import "crypto/boring"

// cryptoBackend says which implementation signs: this is a BoringCrypto
// build (GOEXPERIMENT=boringcrypto, cgo), whose RSA signatures cost about
// half of pure Go's; the fast build adds -tags openssl (RSA signing
// through libcrypto, see internal/opensslrsa), which runVersion reports.
func cryptoBackend() string {
	if boring.Enabled() {
		return "BoringCrypto"
	}
	return "Go (BoringCrypto build, module not active: needs cgo on linux/amd64 or arm64)"
}
