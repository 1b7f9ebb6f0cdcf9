package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vouch/internal/testutil"
)

// rsa512 is too small to sign with (RFC 8301); Go cannot even generate it.
const rsa512 = `-----BEGIN RSA PRIVATE KEY-----
MIIBOgIBAAJBALJdymFCBPnzFo+bnCBl5SFo0G73WCzi7BmbCnQHszeuc2dcgaTr
j/rpjNF8TK/o0U28S+9+dU7g90YQGdghqPcCAwEAAQJAHRzz8IX/G/ESiKQkiqE3
Egnyo3oZ2VG8qb1FqoSrOvYnopTpn4apykkr73vC30puZ+c9y+qpmbML0Kkxs2qO
SQIhAOFwkimLxQW2zC7l0H5XtNQaGgiRUruVz8VJQ7zj5VZbAiEAyouiTRQ81kyQ
SGPdVi5WvtnZgVkJ01JJtc/INtb8EpUCIQC8eKZZgXZ37nkJhCwoVB7ja+bz3rqy
BO8s2rF8y3JCHQIgOo9MiYSEYmEYhhV5dOVI5z0NCby4foSYExzUAib+ElECIGLg
tx2xoweLY4YtJENPyrO74cvuuMwWlOvtIv4lB4qQ
-----END RSA PRIVATE KEY-----
`

func samePublic(a, b crypto.Signer) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	return a.Public().(eq).Equal(b.Public())
}

func TestParseKey(t *testing.T) {
	rsaK := testRSAKey(t)
	edK := testEdKey(t)
	small, err := rsa.GenerateKey(crand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecK, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PrivateKey(rsaK)
	pkcs1PEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1}))
	b64 := base64.StdEncoding.EncodeToString(pkcs1)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edK)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecK)
	ecSEC1, _ := x509.MarshalECPrivateKey(ecK)
	pubDER, _ := x509.MarshalPKIXPublicKey(rsaK.Public())

	tests := []struct {
		name    string
		data    string
		key     crypto.Signer // the key expected back
		alg     string
		warning string
		err     string
	}{
		{"PKCS#1 PEM", pkcs1PEM, rsaK, "rsa", "", ""},
		{"PKCS#1 PEM with text around", "key for example.com\n" + pkcs1PEM + "trailer\n", rsaK, "rsa", "", ""},
		{"PKCS#8 RSA PEM", string(pkcs8PEM(t, rsaK)), rsaK, "rsa", "", ""},
		{"PKCS#8 Ed25519 PEM", string(pkcs8PEM(t, edK)), edK, "ed25519", "", ""},
		{"base64 DER inline (KeyTable)", b64, rsaK, "rsa", "", ""},
		{"base64 DER folded", b64[:64] + "\n" + b64[64:200] + " \t" + b64[200:] + "\n", rsaK, "rsa", "", ""},
		{"base64 PKCS#8 Ed25519", base64.StdEncoding.EncodeToString(edDER), edK, "ed25519", "", ""},
		{"RSA 1024 accepted with a warning", string(pkcs8PEM(t, small)), small, "rsa", "RSA key of 1024 bits: 2048 are recommended", ""},
		{"RSA 512 refused", rsa512, nil, "", "", "RSA key of 512 bits: at least 1024 are needed"},
		{"garbage", "this is not a key", nil, "", "", "neither PEM nor base64 DER"},
		{"empty", "", nil, "", "", "not a PKCS#1 or PKCS#8 private key"},
		{"base64 of garbage", base64.StdEncoding.EncodeToString([]byte("garbage garbage")), nil, "", "", "not a PKCS#1 or PKCS#8 private key"},
		{"PEM with garbage", "-----BEGIN PRIVATE KEY-----\nAAAAAAAA\n-----END PRIVATE KEY-----\n", nil, "", "", "not a PKCS#1 or PKCS#8 private key"},
		{"truncated PEM", pkcs1PEM[:200], nil, "", "", ""},
		{"public key", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})), nil, "", "", "not a PKCS#1 or PKCS#8 private key"},
		{"PKCS#8 ECDSA", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})), nil, "", "", "unsupported key type *ecdsa.PrivateKey"},
		{"SEC1 EC", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecSEC1})), nil, "", "", "not a PKCS#1 or PKCS#8 private key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, warning, err := ParseKey([]byte(tc.data))
			if tc.key == nil {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %q, %v; want an error containing %q", k, warning, err, tc.err)
				}
				if strings.Contains(err.Error(), "PRIVATE KEY") || (len(tc.data) > 40 && strings.Contains(err.Error(), tc.data[10:40])) {
					t.Fatalf("the error shows key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !samePublic(k, tc.key) {
				t.Fatal("a different key came back")
			}
			if Algorithm(k) != tc.alg || warning != tc.warning {
				t.Fatalf("algorithm %q warning %q; want %q %q", Algorithm(k), warning, tc.alg, tc.warning)
			}
		})
	}
}

func TestPublicKeyRecord(t *testing.T) {
	rsaK, edK := testRSAKey(t), testEdKey(t)
	p, err := PublicKeyRecord(rsaK)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := base64.StdEncoding.DecodeString(p)
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil || !rsaK.PublicKey.Equal(pub) {
		t.Fatalf("RSA p= is not the SubjectPublicKeyInfo: %v", err)
	}
	if !strings.HasPrefix(p, "MIIB") {
		t.Fatalf("RSA-2048 p= starts %q", p[:8])
	}
	p, err = PublicKeyRecord(edK)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(p)
	if len(raw) != 32 || !edK.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(raw)) {
		t.Fatalf("Ed25519 p= is not the raw key: %d bytes", len(raw))
	}
}

func TestLoadKeyFileSafety(t *testing.T) {
	dir := t.TempDir()
	data := string(pkcs8PEM(t, testEdKey(t)))
	tests := []struct {
		mode        os.FileMode
		requireSafe bool
		err         string
	}{
		{0o600, true, ""},
		{0o400, true, ""},
		{0o700, true, ""},
		{0o640, true, "mode 0640 lets group or others read or write it (want 0600 or 0400)"},
		{0o604, true, "mode 0604 lets group or others"},
		{0o660, true, "mode 0660 lets group or others"},
		{0o620, true, "mode 0620 lets group or others"},
		{0o602, true, "mode 0602 lets group or others"},
		{0o644, true, "mode 0644 lets group or others"},
		{0o644, false, ""},
		{0o666, false, ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%04o-%v", tc.mode, tc.requireSafe), func(t *testing.T) {
			path := writeFile(t, dir, fmt.Sprintf("k%04o-%v.private", tc.mode, tc.requireSafe), data, tc.mode)
			k, _, err := LoadKeyFile(path, tc.requireSafe)
			if tc.err == "" {
				if err != nil || k == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "key "+path+": "+tc.err) || !strings.Contains(err.Error(), "require_safe_keys = false") {
				t.Fatalf("got %v, want an error with the path and %q", err, tc.err)
			}
		})
	}

	t.Run("not a regular file", func(t *testing.T) {
		if _, _, err := LoadKeyFile(dir, false); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("directory: %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.private")
		if _, _, err := LoadKeyFile(missing, true); err == nil || !strings.Contains(err.Error(), "key "+missing) {
			t.Fatalf("missing: %v", err)
		}
	})
	t.Run("not a key", func(t *testing.T) {
		path := writeFile(t, dir, "text.private", "hello\n", 0o600)
		if _, _, err := LoadKeyFile(path, true); err == nil || !strings.Contains(err.Error(), "key "+path+": neither PEM") {
			t.Fatalf("text: %v", err)
		}
	})
	t.Run("owned by another user", func(t *testing.T) {
		testutil.RequireRoot(t) // to chown
		path := writeFile(t, dir, "other.private", data, 0o600)
		if err := os.Chown(path, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadKeyFile(path, true)
		if err == nil || !strings.Contains(err.Error(), "key "+path+": owned by uid 12345, neither root nor the running uid 0") {
			t.Fatalf("got %v", err)
		}
		if _, _, err := LoadKeyFile(path, false); err != nil {
			t.Fatalf("requireSafe=false: %v", err)
		}
		// Owned by root is always fine.
		os.Chown(path, 0, 0)
		if _, _, err := LoadKeyFile(path, true); err != nil {
			t.Fatalf("root-owned: %v", err)
		}
	})
}
