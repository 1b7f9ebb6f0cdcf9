//go:build cgo && openssl

package opensslrsa

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
)

func genKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// PKCS #1 v1.5 is deterministic: OpenSSL's signature must be crypto/rsa's,
// byte for byte, for every key size and digest DKIM uses.
func TestSignMatchesCryptoRSA(t *testing.T) {
	if !strings.HasPrefix(Version(), "OpenSSL ") {
		t.Fatalf("Version() = %q", Version())
	}
	keys := map[int]*rsa.PrivateKey{1024: genKey(t, 1024), 2048: genKey(t, 2048), 3072: genKey(t, 3072)}
	for _, tc := range []struct {
		name string
		bits int
		hash crypto.Hash
	}{
		{"rsa-sha256 2048", 2048, crypto.SHA256},
		{"rsa-sha256 1024", 1024, crypto.SHA256},
		{"rsa-sha256 3072", 3072, crypto.SHA256},
		{"rsa-sha1 2048", 2048, crypto.SHA1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			priv := keys[tc.bits]
			s, err := Wrap(priv)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.(*signer); !ok {
				t.Fatalf("Wrap returned %T, not the OpenSSL signer", s)
			}
			if !priv.PublicKey.Equal(s.Public()) {
				t.Fatal("Public() is not the key's public key")
			}
			for i := range 20 {
				msg := []byte{byte(i), 'v', 'o', 'u', 'c', 'h'}
				var digest []byte
				if tc.hash == crypto.SHA1 {
					d := sha1.Sum(msg)
					digest = d[:]
				} else {
					d := sha256.Sum256(msg)
					digest = d[:]
				}
				got, err := s.Sign(rand.Reader, digest, tc.hash)
				if err != nil {
					t.Fatal(err)
				}
				want, err := rsa.SignPKCS1v15(nil, priv, tc.hash, digest)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("message %d: OpenSSL's signature differs from crypto/rsa's", i)
				}
			}
		})
	}
}

// What OpenSSL does not sign here goes to crypto/rsa, and what is not an
// RSA key is left alone.
func TestSignFallsBack(t *testing.T) {
	priv := genKey(t, 2048)
	s, err := Wrap(priv)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("pss"))
	pss := &rsa.PSSOptions{Hash: crypto.SHA256}
	sig, err := s.Sign(rand.Reader, d[:], pss)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(&priv.PublicKey, crypto.SHA256, d[:], sig, pss); err != nil {
		t.Errorf("PSS signature does not verify: %v", err)
	}
	if _, err := s.Sign(rand.Reader, d[:20], crypto.SHA256); err == nil {
		t.Error("a 20-byte digest was signed as SHA-256")
	}

	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	if got, err := Wrap(edPriv); got != nil || err != nil {
		t.Errorf("Wrap(ed25519) = %T, %v; want nil, nil", got, err)
	}
}

// The signer is shared by every session: concurrent signatures stay
// right (run with -race).
func TestSignConcurrent(t *testing.T) {
	priv := genKey(t, 2048)
	s, err := Wrap(priv)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 25 {
				d := sha256.Sum256([]byte{byte(g), byte(i)})
				sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
				if err == nil {
					err = rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, d[:], sig)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A signature that does not verify never leaves Sign: the check after
// OpenSSL catches a key mix-up or a fault, and crypto/rsa signs instead.
func TestSignChecksEachSignature(t *testing.T) {
	a, b := genKey(t, 2048), genKey(t, 2048)
	s, err := Wrap(a)
	if err != nil {
		t.Fatal(err)
	}
	s.(*signer).priv = b // OpenSSL still holds a's key
	d := sha256.Sum256([]byte("x"))
	before := Fallbacks()
	got, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := rsa.SignPKCS1v15(nil, b, crypto.SHA256, d[:])
	if !bytes.Equal(got, want) {
		t.Fatal("the signature returned is not crypto/rsa's with the signer's key")
	}
	if n := Fallbacks() - before; n != 1 {
		t.Errorf("Fallbacks grew by %d, want 1", n)
	}
}

func BenchmarkSign(b *testing.B) {
	priv := genKey(b, 2048)
	s, err := Wrap(priv)
	if err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256([]byte("bench"))
	for _, bc := range []struct {
		name string
		s    crypto.Signer
	}{{"openssl", s}, {"crypto-rsa", priv}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := bc.s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
