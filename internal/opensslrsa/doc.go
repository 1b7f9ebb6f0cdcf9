// Package opensslrsa signs with RSA keys through the system's OpenSSL
// libcrypto (cgo, build tag "openssl"), for the fast build.
//
// Why: an RSA-2048 signature is most of the CPU a signed message costs.
// On the project's benchmark machine (AMD EPYC with AVX-512 IFMA) it
// costs 0.90 ms in Go's crypto/rsa, 0.49 ms in the BoringCrypto module
// of the Go toolchain and 0.23 ms in OpenSSL 3 (`openssl speed rsa2048`),
// which is what rspamd and OpenDKIM sign with. See bench/README.md.
//
// Only the private-key operation goes to OpenSSL: PKCS #1 v1.5 signatures
// are deterministic, so every signature must be byte for byte the one
// crypto/rsa would make; Wrap's signer checks each with crypto/rsa's
// public-key verification before returning it, so a fault, a binding bug
// or a mismatched key never leaves as a bad signature.
//
// Without the tag (or without cgo) Available is false and Wrap returns
// nil: crypto/rsa signs.
package opensslrsa
