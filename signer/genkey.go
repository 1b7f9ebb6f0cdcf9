package signer

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// GenerateKey makes a new key: "rsa" with bits (default 2048) or
// "ed25519". It returns the key and its PKCS#8 PEM encoding.
func GenerateKey(alg string, bits int) (crypto.Signer, []byte, error) {
	var key crypto.Signer
	switch alg {
	case "rsa", "":
		if bits == 0 {
			bits = 2048
		}
		if bits < MinRSABits {
			return nil, nil, fmt.Errorf("RSA keys need at least %d bits (RFC 8301)", MinRSABits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, nil, err
		}
		key = k
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		key = k
	default:
		return nil, nil, fmt.Errorf("unknown key type %q (rsa or ed25519)", alg)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// RecordOptions are opendkim-genkey's record flags.
type RecordOptions struct {
	AppendDomain bool // -a: the owner name is SELECTOR._domainkey.DOMAIN.
	Restrict     bool // -r: s=email
	Testing      bool // t=y
}

// TXTRecord is the record as opendkim-genkey writes SELECTOR.txt: a BIND
// line whose key is split into strings of 250 characters (a TXT
// character-string holds at most 255).
func TXTRecord(selector, domain string, key crypto.Signer, o RecordOptions) (string, error) {
	p, err := PublicKeyRecord(key)
	if err != nil {
		return "", err
	}
	owner := selector + "._domainkey"
	if o.AppendDomain {
		owner += "." + domain + "."
	}
	tags := "v=DKIM1; k=" + Algorithm(key) + "; "
	if o.Testing {
		tags += "t=y; "
	}
	if o.Restrict {
		tags += "s=email; "
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\tIN\tTXT\t( %q", owner, tags)
	p = "p=" + p
	for len(p) > 0 {
		n := min(len(p), 250)
		fmt.Fprintf(&b, "\n\t  %q", p[:n])
		p = p[n:]
	}
	fmt.Fprintf(&b, " )  ; ----- DKIM key %s for %s\n", selector, domain)
	return b.String(), nil
}
