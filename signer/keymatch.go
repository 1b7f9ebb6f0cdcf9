package signer

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeyRecord is a parsed DKIM key record (RFC 6376 §3.6.1, RFC 8463).
type KeyRecord struct {
	Alg     string // k=: rsa or ed25519
	Pub     crypto.PublicKey
	Bits    int // RSA modulus size
	Revoked bool
	Testing bool // t=y
}

// ParseKeyRecord reads a DKIM key record. RSA keys may be
// SubjectPublicKeyInfo or bare PKCS#1, as go-msgauth and OpenDKIM accept
// both.
func ParseKeyRecord(txt string) (*KeyRecord, error) {
	tags := map[string]string{}
	for i, part := range strings.Split(txt, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not a tag=value pair", strings.TrimSpace(part))
		}
		k = strings.TrimSpace(k)
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("tag %s appears twice", k)
		}
		v = strings.Join(strings.Fields(v), "")
		if k == "v" && (i != 0 || v != "DKIM1") {
			return nil, errors.New("v= must come first and be DKIM1")
		}
		tags[k] = v
	}
	rec := &KeyRecord{Alg: "rsa"}
	if k, ok := tags["k"]; ok {
		rec.Alg = k
	}
	for _, f := range strings.Split(tags["t"], ":") {
		if strings.TrimSpace(f) == "y" {
			rec.Testing = true
		}
	}
	if h, ok := tags["h"]; ok && !strings.Contains(":"+h+":", ":sha256:") {
		return nil, fmt.Errorf("h=%s does not allow sha256", h)
	}
	p, ok := tags["p"]
	if !ok {
		return nil, errors.New("no p= tag")
	}
	if p == "" {
		rec.Revoked = true
		return rec, nil
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("p= is not base64: %v", err)
	}
	switch rec.Alg {
	case "rsa":
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			pub, err = x509.ParsePKCS1PublicKey(der)
			if err != nil {
				return nil, errors.New("p= is not an RSA public key")
			}
		}
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("p= is a %T, k=rsa says RSA", pub)
		}
		rec.Pub, rec.Bits = rk, rk.N.BitLen()
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("p= has %d bytes, an Ed25519 key has %d", len(der), ed25519.PublicKeySize)
		}
		rec.Pub = ed25519.PublicKey(der)
	default:
		return nil, fmt.Errorf("unknown key type k=%s", rec.Alg)
	}
	return rec, nil
}

// CheckKeyRecord is the one test of whether the TXT records published at
// a selector verify signatures made with key: exactly one record, that
// parses, is not revoked, has a usable size, has the key's algorithm and
// is its public half. key may be nil (only the record is checked). The
// record is returned whenever it parsed, also with an error.
// `vouch testkey`, `vouch keys` and the rotation all decide with it.
func CheckKeyRecord(txts []string, key crypto.Signer) (*KeyRecord, error) {
	switch {
	case len(txts) == 0:
		return nil, errors.New("no key record published")
	case len(txts) > 1:
		return nil, fmt.Errorf("%d TXT records: receivers treat that as no key (RFC 6376 §3.6.2.2); keep one", len(txts))
	}
	rec, err := ParseKeyRecord(txts[0])
	if err != nil {
		return nil, fmt.Errorf("the record does not parse: %w", err)
	}
	switch {
	case rec.Revoked:
		return rec, errors.New("the key is revoked (empty p=): signatures with it fail")
	case rec.Alg == "rsa" && rec.Bits < MinRSABits:
		return rec, fmt.Errorf("RSA key of %d bits: receivers ignore keys under %d bits (RFC 8301)", rec.Bits, MinRSABits)
	case key == nil:
		return rec, nil
	case rec.Alg != Algorithm(key):
		return rec, fmt.Errorf("the record is k=%s, the local key is %s: the published key is not the public half of the local private key: signatures will fail", rec.Alg, Algorithm(key))
	}
	eq, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(rec.Pub) {
		return rec, errors.New("the published key is not the public half of the local private key: signatures will fail")
	}
	return rec, nil
}
