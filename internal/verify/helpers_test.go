//go:debug rsa1024min=0

// The directive above lets the tests make and use RSA keys under 1024
// bits (Go refuses them by default): a 512-bit signature must come out as
// policy, and that needs one.

package verify

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vouch/internal/dnstest"
	"vouch/internal/mailtext"
	"vouch/internal/mtaclient"
	"vouch/internal/resolver"
	"vouch/signer"
)

// testKeys are generated once per test binary: RSA generation is slow.
type testKeys struct {
	rsa2048, other2048, rsa1024, rsa512 *rsa.PrivateKey
	ed                                  ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func getKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		gen := func(bits int) *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			return k
		}
		var wg sync.WaitGroup
		wg.Add(4)
		go func() { defer wg.Done(); keys.rsa2048 = gen(2048) }()
		go func() { defer wg.Done(); keys.other2048 = gen(2048) }()
		go func() { defer wg.Done(); keys.rsa1024 = gen(1024) }()
		go func() { defer wg.Done(); keys.rsa512 = gen(512) }()
		_, keys.ed, _ = ed25519.GenerateKey(rand.Reader)
		wg.Wait()
	})
	return keys
}

// newZone starts a DNS server with records and a resolver on it with a
// short timeout (so that dnstest.Drop ends fast) and no cache.
func newZone(t testing.TB, records ...string) (*dnstest.Server, *resolver.Resolver) {
	t.Helper()
	srv := dnstest.New(t, records...)
	res, err := resolver.New(resolver.Config{Servers: []string{srv.Addr}, Timeout: 200 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return srv, res
}

// keyRecord is the zone line publishing key for selector._domainkey.domain,
// split into 250-character strings as opendkim-genkey does.
func keyRecord(t testing.TB, domain, selector string, key crypto.Signer) string {
	t.Helper()
	p, err := signer.PublicKeyRecord(key)
	if err != nil {
		t.Fatal(err)
	}
	return txtRecord(selector+"._domainkey."+domain, "v=DKIM1; k="+signer.Algorithm(key)+"; p="+p)
}

// txtRecord is a zone line for a TXT record of any length.
func txtRecord(name, text string) string {
	var parts []string
	for len(text) > 0 {
		n := min(len(text), 250)
		parts = append(parts, `"`+strings.ReplaceAll(text[:n], `"`, `\"`)+`"`)
		text = text[n:]
	}
	if len(parts) == 0 {
		parts = []string{`""`}
	}
	return name + ". 300 IN TXT " + strings.Join(parts, " ")
}

// writeKey writes key as PEM (PKCS#8, or PKCS#1 for RSA with pkcs1) with
// mode 0600 and returns the path.
func writeKey(t testing.TB, dir, name string, key crypto.Signer, pkcs1 bool) string {
	t.Helper()
	var block *pem.Block
	if rk, ok := key.(*rsa.PrivateKey); ok && pkcs1 {
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}
	} else {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func edSeed(k ed25519.PrivateKey) string { return base64.StdEncoding.EncodeToString(k.Seed()) }

// splitMessage splits a raw message (LF or CRLF) into header fields as
// the MTA hands them to a milter (value after the colon byte for byte,
// folded with bare LF) and a CRLF body.
func splitMessage(raw string) ([]mailtext.Header, []byte) {
	mh, body := mtaclient.Split([]byte(raw))
	hs := make([]mailtext.Header, len(mh))
	for i, h := range mh {
		hs[i] = mailtext.Header{Name: h.Name, Value: h.Value}
	}
	return hs, body
}

// verifyRaw runs a DKIMStream over a raw message, the body in chunks of
// chunk bytes (0: one write).
func verifyRaw(t testing.TB, lookup func(string) ([]string, error), raw string, maxSigs, chunk int) ([]DKIMResult, int) {
	t.Helper()
	hs, body := splitMessage(raw)
	d := NewDKIM(lookup, maxSigs)
	d.WriteHeaders(hs)
	if chunk <= 0 {
		chunk = max(len(body), 1)
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		if _, err := d.Write(body[:n]); err != nil {
			t.Fatal(err)
		}
		body = body[n:]
	}
	return d.Close(), d.Skipped
}

// sampleMessage is a message with the things that break naive
// canonicalization: folded headers, a header without space after the
// colon, trailing whitespace, empty lines at the end, a long line.
func sampleMessage(from string) string {
	return "From: Alice Example <" + from + ">\n" +
		"To: bob@example.net,\n\tcarol@example.net\n" +
		"Subject: a test\n  with a folded subject   \n" +
		"Date: Mon, 02 Mar 2026 10:00:00 +0000\n" +
		"Message-ID: <m1@example.test>\n" +
		"X-Tight:no space after the colon\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\n" +
		"\n" +
		"Hello Bob,\n" +
		"line with trailing spaces   \n" +
		"\ttabbed line\n" +
		strings.Repeat("long ", 300) + "\n" +
		"\n\n"
}

// defaultSigner is vouch's signer with header lists like the defaults'
// (internal/config cannot be imported here: it imports policy, which
// imports verify) and the given [[signing.key]] entries.
func defaultSigner(t testing.TB, keys ...signer.InlineKey) *signer.Signer {
	t.Helper()
	s, _, err := signer.New(signer.Config{
		Headers:  []string{"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"},
		Oversign: []string{"From", "Subject", "To", "Date", "Cc", "Reply-To", "Content-Type", "MIME-Version", "Message-ID"},
		Keys:     keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// vouchSign signs raw with vouch's signer, as the milter does, and
// returns the message with the DKIM-Signature fields on top (LF).
func vouchSign(t testing.TB, s *signer.Signer, raw string) string {
	t.Helper()
	hs, body := splitMessage(raw)
	local, domain, err := signer.FromAddress(hs)
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := s.Lookup(local, domain)
	if err != nil || len(reqs) == 0 {
		t.Fatalf("no key for %s: %v", domain, err)
	}
	m, err := s.NewMessage(reqs, hs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(body); err != nil {
		t.Fatal(err)
	}
	values, err := m.Finish()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, v := range values {
		b.WriteString("DKIM-Signature:" + strings.ReplaceAll(v, "\r\n", "\n") + "\n")
	}
	return b.String() + raw
}
