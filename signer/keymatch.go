package signer

import (
	"crypto"
	"errors"
	"fmt"
)

// CheckKeyRecord is the one test of whether the TXT records published at
// a selector verify signatures made with key: exactly one record, that
// parses, is not revoked, has a usable size, has the key's algorithm and
// is its public half. key may be nil (only the record is checked). The
// record is returned whenever it parsed, also with an error.
// `vouch testkey`, `vouch check`, `vouch keys` and the rotation all
// decide with it.
func CheckKeyRecord(txts []string, key crypto.Signer) (*KeyRecord, error) {
	switch {
	case len(txts) == 0:
		return nil, errors.New("no key record published")
	case len(txts) > 1:
		return nil, fmt.Errorf("%d TXT records: receivers treat that as no key (RFC 6376 §3.6.2.2); keep one", len(txts))
	}
	rec, err := ParsePublicRecord(txts[0])
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
	case !rec.Matches(key):
		return rec, errors.New("the published key is not the public half of the local private key: signatures will fail")
	}
	return rec, nil
}
