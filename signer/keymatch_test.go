package signer

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

func recordOf(t testing.TB, k crypto.Signer) string {
	t.Helper()
	alg, p, err := PublicRecord(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return "v=DKIM1; k=" + alg + "; p=" + p
}

// tiny is a 512-bit RSA public key: openssl genrsa 512 | openssl rsa
// -pubout -outform DER | base64 (Go refuses to make keys this small).
const tiny = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAM3MIeAafF/rqY9T+9bUUjOxW9yyOCDeDpb9h9auRjSg2J58ubdW98bZyB76YEV7i9iMP2o5unkzr3n51LHNdV8CAwEAAQ=="

// TestCheckKeyRecord: the one decision testkey, keys and the rotation
// share, for every way a published record can fail to verify a key.
func TestCheckKeyRecord(t *testing.T) {
	rsaKey, _, _ := GenerateKey("rsa", 2048)
	otherRSA, _, _ := GenerateKey("rsa", 1024)
	edKey, _, _ := GenerateKey("ed25519", 0)
	pkcs1 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(rsaKey.Public().(*rsa.PublicKey)))
	cases := []struct {
		name string
		txts []string
		key  crypto.Signer
		want string // "" for a match, else a part of the error
	}{
		{"rsa matches", []string{recordOf(t, rsaKey)}, rsaKey, ""},
		{"rsa PKCS#1 matches", []string{"v=DKIM1; p=" + pkcs1}, rsaKey, ""},
		{"ed25519 matches", []string{recordOf(t, edKey)}, edKey, ""},
		{"1024 bits matches", []string{recordOf(t, otherRSA)}, otherRSA, ""},
		{"no key to compare", []string{recordOf(t, rsaKey)}, nil, ""},
		{"another key", []string{recordOf(t, otherRSA)}, rsaKey, "not the public half"},
		{"wrong algorithm", []string{recordOf(t, rsaKey)}, edKey, "the record is k=rsa, the local key is ed25519"},
		{"revoked", []string{"v=DKIM1; k=rsa; p="}, rsaKey, "revoked"},
		{"under 1024 bits", []string{"v=DKIM1; p=" + tiny}, nil, "512 bits"},
		{"two records", []string{recordOf(t, rsaKey), recordOf(t, rsaKey)}, rsaKey, "2 TXT records"},
		{"none", nil, rsaKey, "no key record"},
		{"garbage", []string{"v=DKIM1; p=!!!"}, rsaKey, "not base64"},
		{"sha1 only", []string{"v=DKIM1; h=sha1; " + strings.TrimPrefix(recordOf(t, rsaKey), "v=DKIM1; ")}, rsaKey, "sha256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckKeyRecord(tc.txts, tc.key)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v, want a match", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzCheckKeyRecord: whatever a DNS record holds, a record that
// CheckKeyRecord accepts for a key verifies that key's signatures in an
// independent verifier (go-msgauth), so the rotation never switches to a
// key receivers would reject.
func FuzzCheckKeyRecord(f *testing.F) {
	keys := map[byte]crypto.Signer{}
	signed := map[byte][]byte{}
	for i, alg := range []string{"ed25519", "rsa"} {
		k, _, err := GenerateKey(alg, 1024)
		if err != nil {
			f.Fatal(err)
		}
		msg := "From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n"
		var b bytes.Buffer
		if err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{Domain: "example.test", Selector: "s", Signer: k}); err != nil {
			f.Fatal(err)
		}
		keys[byte(i)], signed[byte(i)] = k, b.Bytes()
		rec := recordOf(f, k)
		f.Add(byte(i), rec)
		f.Add(byte(i), strings.Replace(rec, "v=DKIM1; ", "v=DKIM1; t=y; h=sha1:sha256; s=email; ", 1))
		f.Add(byte(i), strings.ReplaceAll(rec, "; ", " ;\t"))
		f.Add(byte(1-i), rec)
	}
	rsaKey := keys[1].Public().(*rsa.PublicKey)
	f.Add(byte(1), "v=DKIM1; p="+base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(rsaKey)))
	f.Add(byte(1), "v=DKIM1; k=rsa; p=")
	f.Add(byte(1), "v=DKIM1; p="+tiny)
	f.Fuzz(func(t *testing.T, which byte, txt string) {
		which %= 2
		if _, err := CheckKeyRecord([]string{txt}, keys[which]); err != nil {
			return
		}
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed[which]), &dkim.VerifyOptions{
			LookupTXT: func(string) ([]string, error) { return []string{txt}, nil },
		})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("CheckKeyRecord accepts %q, go-msgauth does not verify with it: %v %+v", txt, err, vs)
		}
	})
}
