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
		{0o604, true, "mode 0604 lets others read or write it"},
		{0o602, true, "mode 0602 lets others"},
		{0o644, true, "mode 0644 lets others"},
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
}

// TestSafeKeyOwnership is OpenDKIM's RequireSafeKeys rule as root sees it,
// over made-up accounts: who owns the key and its directory, who else is
// in their groups, and symlinks. test/safekeys_test.go proves the same
// verdicts side by side with the real opendkim.
func TestSafeKeyOwnership(t *testing.T) {
	testutil.RequireRoot(t) // to chown
	accounts := t.TempDir()
	passwdFile, groupFile = filepath.Join(accounts, "passwd"), filepath.Join(accounts, "group")
	t.Cleanup(func() { passwdFile, groupFile = "/etc/passwd", "/etc/group" })
	writeFile(t, accounts, "passwd", `root:x:0:0:root:/root:/bin/bash
vouch:x:900:900::/nonexistent:/usr/sbin/nologin
mallory:x:1000:1000::/home/mallory:/bin/bash
shared:x:1001:950::/nonexistent:/usr/sbin/nologin
`, 0o644)
	writeFile(t, accounts, "group", `root:x:0:
vouch:x:900:
mallory:x:1000:
shared:x:950:
team:x:960:mallory
keys:x:970:root,vouch
`, 0o644)
	data := string(pkcs8PEM(t, testEdKey(t)))

	type node struct {
		mode     os.FileMode
		uid, gid int
	}
	tests := []struct {
		name     string
		key, dir node
		err      string // "" safe
	}{
		{"0600 root", node{0o600, 0, 0}, node{0o755, 0, 0}, ""},
		{"0400 root", node{0o400, 0, 0}, node{0o755, 0, 0}, ""},
		{"0440 root:root, the classic recipe", node{0o440, 0, 0}, node{0o755, 0, 0}, ""},
		{"0640 root:root", node{0o640, 0, 0}, node{0o755, 0, 0}, ""},
		{"0644 root", node{0o644, 0, 0}, node{0o755, 0, 0}, "mode 0644 lets others read or write it"},
		{"group is another user's primary group", node{0o640, 0, 950}, node{0o755, 0, 0}, "mode 0640 lets group 950 read or write it, and user shared has that group"},
		{"group has another member", node{0o440, 0, 960}, node{0o755, 0, 0}, "user mallory is a member of that group"},
		{"group of root and the service user", node{0o640, 0, 970}, node{0o755, 0, 0}, ""},
		{"group of a missing gid", node{0o640, 0, 4242}, node{0o755, 0, 0}, "group 4242 is not in"},
		{"owned by another user", node{0o600, 1000, 1000}, node{0o755, 0, 0}, "owned by uid 1000, not by root; nor is it safe for the service user vouch"},
		{"owned by the service user", node{0o600, 900, 900}, node{0o700, 900, 900}, ""},
		{"root:vouch 0640, Debian's layout", node{0o640, 0, 900}, node{0o750, 0, 900}, ""},
		{"directory writable by others", node{0o600, 0, 0}, node{0o777, 0, 0}, "is writable by others (mode 0777)"},
		{"sticky directory of root", node{0o600, 0, 0}, node{0o777 | os.ModeSticky, 0, 0}, ""},
		{"sticky directory of another user", node{0o600, 0, 0}, node{0o777 | os.ModeSticky, 1000, 1000}, "is writable by others"},
		{"directory writable by a shared group", node{0o600, 0, 0}, node{0o770, 0, 960}, "is writable by group 960, and user mallory is a member of that group"},
		{"directory writable by root's group", node{0o600, 0, 0}, node{0o775, 0, 0}, ""},
		{"directory of another user", node{0o600, 0, 0}, node{0o755, 1000, 1000}, "is writable by its owner uid 1000, not by root"},
		{"read-only directory of another user", node{0o600, 0, 0}, node{0o555, 1000, 1000}, ""},
	}
	base := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(base, fmt.Sprint(i))
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			path := writeFile(t, d, "k.private", data, 0o600)
			for _, n := range []struct {
				path string
				node
			}{{path, tc.key}, {d, tc.dir}} {
				if err := os.Chown(n.path, n.uid, n.gid); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(n.path, n.mode); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := LoadKeyFile(path, true)
			if tc.err == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("got %v, want %q", err, tc.err)
			}
		})
	}

	// A symlink is judged by what it points to (realpath), as OpenDKIM does.
	safe := filepath.Join(base, "safe")
	open := filepath.Join(base, "open")
	for _, d := range []string{safe, open} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(open, 0o777)
	inSafe := writeFile(t, safe, "k.private", data, 0o600)
	inOpen := writeFile(t, open, "k.private", data, 0o600)
	os.Symlink(inSafe, filepath.Join(open, "link.private"))
	os.Symlink(inOpen, filepath.Join(safe, "link.private"))
	if _, _, err := LoadKeyFile(filepath.Join(open, "link.private"), true); err != nil {
		t.Errorf("link in an open directory to a safe key: %v", err)
	}
	if _, _, err := LoadKeyFile(filepath.Join(safe, "link.private"), true); err == nil || !strings.Contains(err.Error(), open+" is writable by others") {
		t.Errorf("link to a key in an open directory: %v", err)
	}
}
