//go:build !(cgo && openssl)

package opensslrsa

import "crypto"

// Available is true in a build that signs RSA through OpenSSL.
const Available = false

// Version is the OpenSSL library in use: none in this build.
func Version() string { return "" }

// Fallbacks counts the signatures crypto/rsa made instead of OpenSSL:
// none in this build.
func Fallbacks() uint64 { return 0 }

// Wrap returns nil: this build signs with crypto/rsa.
func Wrap(key crypto.Signer) (crypto.Signer, error) { return nil, nil }
