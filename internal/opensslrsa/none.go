//go:build !(cgo && openssl)

package opensslrsa

import "crypto"

// Available is true in a build that signs RSA through OpenSSL.
const Available = false

// Version is the OpenSSL library in use: none in this build.
func Version() string { return "" }

// Wrap returns nil: this build signs with crypto/rsa.
func Wrap(key crypto.Signer) (crypto.Signer, error) { return nil, nil }
