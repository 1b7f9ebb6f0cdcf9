package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/mtaclient"
	"vouch/signer"
)

// PubKey is a public key to verify signatures with, as the DKIM TXT
// record that would publish it.
type PubKey struct {
	Selector string // "" unless the file said (a TXT record file) or the flag did (SELECTOR=FILE)
	Alg      string // "rsa" or "ed25519"
	Record   string // v=DKIM1; k=...; p=...
	Source   string
}

// LoadPubKey reads a PEM or DER public key, a PEM or DER private key (its
// public half is used), or a DKIM TXT record file (BIND syntax as
// opendkim-genkey and vouch genkey write it, or the bare record). The
// argument may be SELECTOR=FILE to bind the key to a selector.
func LoadPubKey(arg string) (*PubKey, error) {
	sel, path, ok := strings.Cut(arg, "=")
	if !ok || strings.ContainsAny(sel, "/.") {
		sel, path = "", arg
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parsePubKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if sel != "" {
		k.Selector = sel
	}
	k.Source = path
	return k, nil
}

var quoted = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

func parsePubKey(data []byte) (*PubKey, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		return fromDER(blk.Bytes)
	}
	if k, err := fromDER(data); err == nil {
		return k, nil
	}
	text := string(data)
	if !strings.Contains(text, "p=") {
		return nil, errors.New("neither a PEM/DER key nor a DKIM TXT record")
	}
	k := &PubKey{}
	record := text
	if ms := quoted.FindAllStringSubmatch(text, -1); len(ms) > 0 {
		var b strings.Builder
		for _, m := range ms {
			b.WriteString(strings.ReplaceAll(m[1], `\;`, ";"))
		}
		record = b.String()
		if f := strings.Fields(text); len(f) > 0 {
			if s, ok := strings.CutSuffix(strings.TrimSuffix(f[0], "."), "._domainkey"); ok {
				k.Selector = s
			} else if s, _, ok := strings.Cut(f[0], "._domainkey."); ok {
				k.Selector = s
			}
		}
	}
	record = strings.TrimSpace(record)
	k.Alg = "rsa"
	for _, tag := range strings.Split(record, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(tag), "=")
		if strings.TrimSpace(name) == "k" {
			k.Alg = strings.TrimSpace(value)
		}
	}
	k.Record = record
	return k, nil
}

func fromDER(der []byte) (*PubKey, error) {
	var pub crypto.PublicKey
	if p, err := x509.ParsePKIXPublicKey(der); err == nil {
		pub = p
	} else if p, err := x509.ParsePKCS1PublicKey(der); err == nil {
		pub = p
	} else if p, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		pub = p.(crypto.Signer).Public()
	} else if p, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		pub = p.Public()
	} else {
		return nil, errors.New("not a PKIX/PKCS#1 public key or PKCS#8/PKCS#1 private key")
	}
	alg, p, err := signer.PublicRecord(pub)
	if err != nil {
		return nil, err
	}
	return &PubKey{Alg: alg, Record: "v=DKIM1; k=" + alg + "; p=" + p}, nil
}

// Verifier checks signatures against the given keys, without DNS: the
// record for s=SELECTOR d=DOMAIN is the key bound to that selector, else
// the (first) key of the signature's algorithm.
type Verifier struct {
	Keys []*PubKey
}

// sigTags reads the s=, d= and a= tags of every DKIM-Signature.
func sigTags(headers []mtaclient.Header) (sigs []map[string]string) {
	for _, h := range headers {
		if !strings.EqualFold(h.Name, "DKIM-Signature") {
			continue
		}
		tags := map[string]string{}
		for _, tv := range strings.Split(h.Value, ";") {
			k, v, _ := strings.Cut(tv, "=")
			tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
		}
		sigs = append(sigs, tags)
	}
	return sigs
}

// Verify verifies every DKIM-Signature of the message (headers as stored
// after the milter's changes, then the body streamed again). It returns
// the number of signatures and the first failure.
func (v *Verifier) Verify(headers []mtaclient.Header, body io.Reader) (int, error) {
	records := map[string]string{}
	for _, t := range sigTags(headers) {
		alg, _, _ := strings.Cut(t["a"], "-")
		name := strings.ToLower(t["s"] + "._domainkey." + t["d"])
		var pick *PubKey
		for _, k := range v.Keys {
			if k.Selector != "" && k.Selector == t["s"] {
				pick = k
				break
			}
		}
		if pick == nil {
			for _, k := range v.Keys {
				if k.Selector == "" && k.Alg == alg {
					pick = k
					break
				}
			}
		}
		if pick != nil {
			records[name] = pick.Record
		}
	}
	lookup := func(name string) ([]string, error) {
		if r, ok := records[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
			return []string{r}, nil
		}
		return nil, &net.DNSError{Err: "no key given for this selector and algorithm", Name: name, IsNotFound: true}
	}
	msg := io.MultiReader(strings.NewReader(string(mtaclient.Render(headers, nil))), body)
	vs, err := dkim.VerifyWithOptions(msg, &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: 10})
	if err != nil {
		return 0, err
	}
	if len(vs) == 0 {
		return 0, errors.New("no DKIM-Signature")
	}
	for _, r := range vs {
		if r.Err != nil {
			return len(vs), fmt.Errorf("d=%s: %w", r.Domain, r.Err)
		}
	}
	return len(vs), nil
}
