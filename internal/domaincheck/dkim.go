package domaincheck

import (
	"context"
	"crypto"
	"fmt"
	"strings"

	"vouch/internal/resolver"
	"vouch/signer"
)

// KeyResult is what CheckKey concluded about a published key.
type KeyResult int

const (
	KeyOK       KeyResult = iota // published, usable (and, with a local key, that key)
	KeyUnusable                  // does not parse, revoked, too short, several records, or not the local key
	KeyMissing                   // not published
	KeyTempFail                  // DNS failure: try again
)

// checkDKIM checks the published record of each configured key of the
// domain (or of -selector).
func (c *checker) checkDKIM() {
	type sel struct {
		name string
		key  Key
	}
	var sels []sel
	for _, k := range c.keys {
		if (k.Domain == c.domain || k.Domain == "%") && (c.selector == "" || k.Selector == c.selector) {
			sels = append(sels, sel{k.Selector, k})
		}
	}
	if c.selector != "" && len(sels) == 0 {
		sels = append(sels, sel{name: c.selector})
	}
	if len(sels) == 0 {
		c.add("dkim", "DKIM", Warn, "no key for "+c.domain+" in the configuration: vouch does not sign its mail (add a [[signing.key]], or give -selector to check a published key).", "", "")
		return
	}
	for _, s := range sels {
		title := "DKIM " + s.name + "._domainkey." + c.domain
		kc := CheckKey(c.ctx, c.res, c.domain, s.name, s.key.Signer)
		switch kc.Result {
		case KeyOK:
			msg := "published"
			if kc.Matches {
				msg = "published, matches the key of " + s.key.Source
				if c.dkimAligned == "" {
					c.dkimAligned = "d=" + c.domain + " s=" + s.name
				}
			}
			msg += " (" + kc.Desc + ")"
			if kc.Warning != "" {
				c.add("dkim", title, Warn, msg+"; "+kc.Warning+".", "", "")
			} else {
				c.add("dkim", title, OK, msg+".", "", "")
			}
		case KeyTempFail:
			c.add("dkim", title, Warn, "could not look it up: "+strings.TrimPrefix(kc.Message, "DNS failure: ")+".", "", "")
			c.dnsTrouble = true
		case KeyMissing:
			c.add("dkim", title, Fail, "not published: receivers cannot verify the signatures vouch adds.", "", kc.Publish)
		default:
			found := kc.Found
			if len(found) > 120 {
				found = found[:117] + "..."
			}
			c.add("dkim", title, Fail, kc.Message+".", found, kc.Publish)
		}
	}
}

// KeyCheck is what CheckKey found for one selector.
type KeyCheck struct {
	Name    string // SELECTOR._domainkey.DOMAIN
	Found   string // the TXT record as published ("" if none)
	Result  KeyResult
	Message string // one sentence: what is right or wrong
	Warning string // something to fix that does not break signatures
	Alg     string // rsa or ed25519, from the record
	Bits    int    // RSA modulus size
	Desc    string // "rsa 2048 bits", "ed25519"
	Matches bool   // the record is the public half of the local key
	Publish string // the record to publish (from the local key) when it is missing or wrong
}

// CheckKey looks up SELECTOR._domainkey.DOMAIN and checks the record:
// published, exactly one, parses, not revoked, a usable key size, and,
// with a local key, that it is that key's public half.
func CheckKey(ctx context.Context, res *resolver.Resolver, domain, selector string, key crypto.Signer) KeyCheck {
	kc := KeyCheck{Name: selector + "._domainkey." + domain}
	if key != nil && domain != "%" {
		if rec, err := RecordText(key); err == nil {
			kc.Publish = kc.Name + ". IN TXT " + rec
		}
	}
	if domain == "%" {
		kc.Message = "not checked"
		return kc
	}
	txts, st, err := res.TXT(ctx, kc.Name)
	switch {
	case err != nil && resolver.IsTemporary(err):
		kc.Result, kc.Message = KeyTempFail, "DNS failure: "+err.Error()
		return kc
	case err != nil:
		kc.Result, kc.Message = KeyUnusable, "not a valid DNS name: "+err.Error()
		return kc
	case st != resolver.Found:
		kc.Result, kc.Message = KeyMissing, "no key record published ("+st.String()+")"
		return kc
	}
	kc.Found = strings.Join(txts, " | ")
	rec, err := signer.CheckKeyRecord(txts, key)
	if rec != nil {
		kc.Alg, kc.Bits, kc.Desc = rec.Alg, rec.Bits, rec.Alg
		if rec.Alg == "rsa" {
			kc.Desc = fmt.Sprintf("rsa %d bits", rec.Bits)
		}
	}
	if err != nil {
		kc.Result, kc.Message = KeyUnusable, err.Error()
		return kc
	}
	if rec.Alg == "rsa" && rec.Bits < 2048 {
		kc.Warning = fmt.Sprintf("RSA key of %d bits: 2048 are recommended", rec.Bits)
	}
	if rec.Testing {
		if kc.Warning != "" {
			kc.Warning += "; "
		}
		kc.Warning += "t=y: receivers treat the domain as testing DKIM"
	}
	if key == nil {
		kc.Message = kc.Desc + " (no local key to compare)"
		return kc
	}
	kc.Matches = true
	kc.Message = "key OK (" + kc.Desc + ")"
	return kc
}

// RecordText is the TXT record text for a key, in 250-character
// strings as a zone file needs them.
func RecordText(key crypto.Signer) (string, error) {
	p, err := signer.PublicKeyRecord(key)
	if err != nil {
		return "", err
	}
	text := "v=DKIM1; k=" + signer.Algorithm(key) + "; p=" + p
	var parts []string
	for len(text) > 0 {
		n := min(len(text), 250)
		parts = append(parts, `"`+text[:n]+`"`)
		text = text[n:]
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return "( " + strings.Join(parts, " ") + " )", nil
}
