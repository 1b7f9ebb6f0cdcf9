package signer

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
)

func TestParsePublicRecord(t *testing.T) {
	ed, _, err := GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _, err := GenerateKey("rsa", 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edP, _ := PublicRecord(ed.Public())
	_, rsaP, _ := PublicRecord(rsaKey.Public())
	pkcs1 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(rsaKey.Public().(*rsa.PublicKey)))
	tests := []struct {
		txt     string
		alg     string
		bits    int
		revoked bool
		testing bool
		err     string
	}{
		{txt: "v=DKIM1; k=ed25519; p=" + edP, alg: "ed25519"},
		{txt: "v=DKIM1; p=" + rsaP, alg: "rsa", bits: 1024},
		{txt: "p=" + pkcs1 + "; t=s:y", alg: "rsa", bits: 1024, testing: true},
		{txt: "v=DKIM1; h=sha1:sha256; p=" + rsaP[:20] + " \t" + rsaP[20:], alg: "rsa", bits: 1024},
		{txt: "v=DKIM1; k=rsa; p=", alg: "rsa", revoked: true},
		{txt: "k=rsa; v=DKIM1; p=AAAA", err: "v= must come first"},
		{txt: "v=DKIM2; p=AAAA", err: "v= must come first"},
		{txt: "v=DKIM1; h=sha1; p=AAAA", err: "does not allow sha256"},
		{txt: "v=DKIM1; k=rsa", err: "no p= tag"},
		{txt: "v=DKIM1; p=AAAA; p=BBBB", err: "appears twice"},
		{txt: "v=DKIM1; garbage", err: "not a tag=value pair"},
		{txt: "v=DKIM1; p=!!!", err: "not base64"},
		{txt: "v=DKIM1; k=rsa; p=bm90IGEga2V5", err: "not an RSA public key"},
		{txt: "v=DKIM1; k=ed25519; p=AAAA", err: "has 3 bytes"},
		{txt: "v=DKIM1; k=dsa; p=AAAA", err: "unknown key type"},
	}
	for _, tc := range tests {
		rec, err := ParsePublicRecord(tc.txt)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.txt, err, tc.err)
			}
			continue
		}
		if err != nil || rec.Alg != tc.alg || rec.Bits != tc.bits || rec.Revoked != tc.revoked || rec.Testing != tc.testing {
			t.Errorf("%q: %+v %v", tc.txt, rec, err)
		}
	}
	rec, _ := ParsePublicRecord("v=DKIM1; k=ed25519; p=" + edP)
	if !rec.Matches(ed) || rec.Matches(rsaKey) {
		t.Error("Matches")
	}
	if rec, _ := ParsePublicRecord("v=DKIM1; p="); rec.Matches(rsaKey) {
		t.Error("a revoked record matches")
	}
}

// FuzzParsePublicRecord: a record that parses to a key is read the same
// after the key is written back with PublicRecord (round trip), and
// parsing never panics.
func FuzzParsePublicRecord(f *testing.F) {
	ed := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	_, edP, _ := PublicRecord(ed.Public())
	f.Add("v=DKIM1; k=ed25519; p=" + edP)
	f.Add("v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMxPbb1ehQxb2Sd3KANBQ8bOJ/GrGxa1gQDEwFOPdHmyMY9ix2MrXnKAs3uQVudJcW5mtvJ4ZyCaGJf3KDZrJIsCAwEAAQ==")
	f.Add("v=DKIM1; p=")
	f.Add("v=DKIM1; h=sha1:sha256; t=y:s; p=AAAA")
	f.Add("k=rsa; v=DKIM1")
	f.Fuzz(func(t *testing.T, txt string) {
		rec, err := ParsePublicRecord(txt)
		if err != nil || rec.Revoked {
			return
		}
		alg, p, err := PublicRecord(rec.Public)
		if err != nil {
			t.Fatalf("%q parsed to a key PublicRecord cannot write: %v", txt, err)
		}
		again, err := ParsePublicRecord("v=DKIM1; k=" + alg + "; p=" + p)
		if err != nil || again.Alg != rec.Alg || again.Bits != rec.Bits {
			t.Fatalf("round trip of %q: %+v %v, first %+v", txt, again, err, rec)
		}
		if eq, ok := again.Public.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(rec.Public) {
			t.Fatalf("round trip of %q changed the key", txt)
		}
	})
}
