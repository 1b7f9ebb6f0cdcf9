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

// KeyRecord is a DKIM key record as published in DNS (RFC 6376 §3.6.1,
// RFC 8463).
type KeyRecord struct {
	Alg     string           // k=: "rsa" (the default) or "ed25519"
	Public  crypto.PublicKey // *rsa.PublicKey or ed25519.PublicKey; nil when revoked
	Bits    int              // RSA modulus size
	Revoked bool             // empty p=: signatures with the key fail
	Testing bool             // t=y: the domain is testing DKIM
}

// ParsePublicRecord reads a DKIM key record, the reverse of PublicRecord.
// RSA keys may be SubjectPublicKeyInfo or bare PKCS#1, as go-msgauth and
// OpenDKIM accept both. A record that does not allow sha256 (h=) is an
// error: vouch signs and verifies with sha256 only.
func ParsePublicRecord(txt string) (*KeyRecord, error) {
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
		rec.Public, rec.Bits = rk, rk.N.BitLen()
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("p= has %d bytes, an Ed25519 key has %d", len(der), ed25519.PublicKeySize)
		}
		rec.Public = ed25519.PublicKey(der)
	default:
		return nil, fmt.Errorf("unknown key type k=%s", rec.Alg)
	}
	return rec, nil
}

// Matches reports whether the record publishes the public half of key.
func (r *KeyRecord) Matches(key crypto.Signer) bool {
	eq, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && r.Public != nil && eq.Equal(r.Public)
}
