package signer

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MinRSABits is the smallest RSA key vouch signs with (RFC 8301 §3.2:
// verifiers treat smaller keys as permfail).
const MinRSABits = 1024

// ParseKey reads a private key: PEM (PKCS#1 "RSA PRIVATE KEY" or PKCS#8
// "PRIVATE KEY", RSA or Ed25519), or base64 DER as OpenDKIM accepts it
// inline in a KeyTable. warning is set for RSA keys under 2048 bits.
func ParseKey(data []byte) (key crypto.Signer, warning string, err error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		der = block.Bytes
	} else if b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(data)), "")); err == nil {
		der = b
	} else {
		return nil, "", errors.New("neither PEM nor base64 DER")
	}
	var parsed any
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		parsed = k
	} else if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		parsed = k
	} else {
		return nil, "", fmt.Errorf("not a PKCS#1 or PKCS#8 private key: %v", err)
	}
	switch k := parsed.(type) {
	case *rsa.PrivateKey:
		bits := k.N.BitLen()
		if bits < MinRSABits {
			return nil, "", fmt.Errorf("RSA key of %d bits: at least %d are needed (RFC 8301)", bits, MinRSABits)
		}
		k.Precompute()
		if bits < 2048 {
			warning = fmt.Sprintf("RSA key of %d bits: 2048 are recommended", bits)
		}
		return k, warning, nil
	case ed25519.PrivateKey:
		return k, "", nil
	}
	return nil, "", fmt.Errorf("unsupported key type %T (want RSA or Ed25519)", parsed)
}

// LoadKeyFile reads and parses a key file. With requireSafe, a file that
// someone other than root and the user vouch runs as could read or
// replace is refused, by OpenDKIM's RequireSafeKeys rule (unsafeKeyPath).
func LoadKeyFile(path string, requireSafe bool) (crypto.Signer, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("key %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("key %s: not a regular file", path)
	}
	if requireSafe {
		if reason := unsafeKeyPath(path, fi); reason != "" {
			return nil, "", fmt.Errorf("key %s: %s (fix it, or set signing.require_safe_keys = false)", path, reason)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, 64*1024))
	if err != nil {
		return nil, "", fmt.Errorf("key %s: %w", path, err)
	}
	key, warning, err := ParseKey(data)
	if err != nil {
		return nil, "", fmt.Errorf("key %s: %w", path, err)
	}
	return key, warning, nil
}

// Algorithm is "rsa" or "ed25519", for logs and DNS records.
func Algorithm(k crypto.Signer) string {
	if _, ok := k.Public().(ed25519.PublicKey); ok {
		return "ed25519"
	}
	return "rsa"
}

// PublicKeyRecord is the p= value of the key's DNS record: the base64
// SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1), the raw 32-byte key for
// Ed25519 (RFC 8463 §4.2).
func PublicKeyRecord(k crypto.Signer) (string, error) {
	_, p, err := PublicRecord(k.Public())
	return p, err
}

// PublicRecord is the k= and p= values of the DNS record for a public key.
func PublicRecord(pub crypto.PublicKey) (alg, p string, err error) {
	switch pub := pub.(type) {
	case ed25519.PublicKey:
		return "ed25519", base64.StdEncoding.EncodeToString(pub), nil
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", "", err
		}
		return "rsa", base64.StdEncoding.EncodeToString(der), nil
	}
	return "", "", fmt.Errorf("unsupported key type %T", pub)
}
