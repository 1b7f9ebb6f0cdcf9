package verify

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/dnstest"
	"vouch/internal/testutil"
	"vouch/signer"
)

// goSign signs raw with go-msgauth directly: for what vouch's signer
// refuses to make (RSA under 1024 bits, l=).
func goSign(t testing.TB, raw, domain, selector string, key crypto.Signer, bodyLimit bool) string {
	t.Helper()
	hs, body := splitMessage(raw)
	var head bytes.Buffer
	for _, h := range hs {
		head.WriteString(h.Name + ":" + strings.ReplaceAll(h.Value, "\n", "\r\n") + "\r\n")
	}
	head.WriteString("\r\n")
	msg := append(head.Bytes(), body...)
	var out bytes.Buffer
	opts := &dkim.SignOptions{Domain: domain, Selector: selector, Signer: key, HeaderKeys: []string{"From", "To", "Subject", "Date"},
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed}
	if err := dkim.Sign(&out, bytes.NewReader(msg), opts); err != nil {
		t.Fatal(err)
	}
	signed := out.String()
	if bodyLimit {
		// go-msgauth cannot sign with l=; a signature with l= that would
		// otherwise verify is not needed: the tag alone decides.
		signed = strings.Replace(signed, "DKIM-Signature: ", "DKIM-Signature: l=10; ", 1)
	}
	return strings.ReplaceAll(signed, "\r\n", "\n")
}

// dkimpySign signs raw with dkimpy (python3-dkim) and returns the message
// with its DKIM-Signature on top. key is PEM (RSA) or a base64 Ed25519 seed.
func dkimpySign(t testing.TB, raw, domain, selector, keyData, alg, canon string, length bool) string {
	t.Helper()
	const py = `/usr/bin/python3`
	if _, err := os.Stat(py); err != nil {
		testutil.Require(t, "/usr/bin/python3")
	}
	if err := exec.Command(py, "-c", "import dkim").Run(); err != nil {
		testutil.Require(t, "python3-dkim (apt-get install python3-dkim)")
	}
	script := `
import sys, dkim
msg = sys.stdin.buffer.read()
key, sel, dom, alg, canon, length = sys.argv[1:7]
hc, bc = canon.split("/")
sig = dkim.sign(msg, sel.encode(), dom.encode(), key.encode(),
    canonicalize=(hc.encode(), bc.encode()), signature_algorithm=alg.encode(),
    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    length=(length == "1"))
sys.stdout.buffer.write(sig)
`
	l := "0"
	if length {
		l = "1"
	}
	cmd := exec.Command(py, "-c", script, keyData, selector, domain, alg, canon, l)
	cmd.Stdin = strings.NewReader(raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, stderr.String())
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n") + raw
}

func pemString(t testing.TB, key crypto.Signer) string {
	t.Helper()
	path := writeKey(t, t.TempDir(), "k.pem", key, true)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantResults(t *testing.T, got []DKIMResult, want ...Status) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d results %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i].Status != w {
			t.Errorf("signature %d (d=%s s=%s a=%s): %s (%s), want %s", i, got[i].Domain, got[i].Selector, got[i].Algorithm, got[i].Status, got[i].Reason, w)
		}
	}
}

// TestDKIMSigners verifies messages signed by vouch's own signer, dkimpy
// and go-msgauth in every canonicalization and algorithm they offer, over
// an in-process DNS server, written in chunks of several sizes.
func TestDKIMSigners(t *testing.T) {
	k := getKeys(t)
	dir := t.TempDir()
	_, res := newZone(t,
		keyRecord(t, "example.test", "rsa", k.rsa2048),
		keyRecord(t, "example.test", "ed", k.ed),
		keyRecord(t, "example.test", "r1024", k.rsa1024),
	)
	lookup := LookupTXT(res)
	vs := defaultSigner(t,
		signer.InlineKey{Domain: "example.test", Selector: "rsa", PrivateKey: writeKey(t, dir, "rsa.pem", k.rsa2048, false)},
		signer.InlineKey{Domain: "example.test", Selector: "ed", PrivateKey: writeKey(t, dir, "ed.pem", k.ed, false)},
	)
	v1024 := defaultSigner(t,
		signer.InlineKey{Domain: "example.test", Selector: "r1024", PrivateKey: writeKey(t, dir, "r1024.pem", k.rsa1024, false)})
	msg := sampleMessage("alice@example.test")
	rsaPEM := pemString(t, k.rsa2048)

	cases := []struct {
		name   string
		signed func(t *testing.T) string
		want   []Status
	}{
		{"vouch rsa+ed25519", func(t *testing.T) string { return vouchSign(t, vs, msg) }, []Status{Pass, Pass}},
		{"vouch rsa-1024", func(t *testing.T) string { return vouchSign(t, v1024, msg) }, []Status{Pass}},
		{"vouch bare LF body", func(t *testing.T) string {
			return vouchSign(t, vs, strings.ReplaceAll(msg, "\n", "\r\n"))
		}, []Status{Pass, Pass}},
		{"dkimpy rsa relaxed/simple", func(t *testing.T) string {
			return dkimpySign(t, msg, "example.test", "rsa", rsaPEM, "rsa-sha256", "relaxed/simple", false)
		}, []Status{Pass}},
		{"dkimpy rsa simple/simple", func(t *testing.T) string {
			return dkimpySign(t, msg, "example.test", "rsa", rsaPEM, "rsa-sha256", "simple/simple", false)
		}, []Status{Pass}},
		{"dkimpy rsa relaxed/relaxed", func(t *testing.T) string {
			return dkimpySign(t, msg, "example.test", "rsa", rsaPEM, "rsa-sha256", "relaxed/relaxed", false)
		}, []Status{Pass}},
		{"dkimpy ed25519", func(t *testing.T) string {
			return dkimpySign(t, msg, "example.test", "ed", edSeed(k.ed), "ed25519-sha256", "relaxed/relaxed", false)
		}, []Status{Pass}},
		{"dkimpy rsa-sha1 is policy", func(t *testing.T) string {
			return dkimpySign(t, msg, "example.test", "rsa", rsaPEM, "rsa-sha1", "relaxed/relaxed", false)
		}, []Status{Policy}},
		{"dkimpy l= is policy", func(t *testing.T) string {
			return dkimpySign(t, msg, "example.test", "rsa", rsaPEM, "rsa-sha256", "relaxed/relaxed", true)
		}, []Status{Policy}},
		{"go-msgauth rsa", func(t *testing.T) string { return goSign(t, msg, "example.test", "rsa", k.rsa2048, false) }, []Status{Pass}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			signed := tc.signed(t)
			for _, chunk := range []int{0, 1, 7, 4096} {
				got, _ := verifyRaw(t, lookup, signed, 0, chunk)
				wantResults(t, got, tc.want...)
				if t.Failed() {
					t.Logf("chunk %d, message:\n%s", chunk, signed)
					return
				}
			}
		})
	}
}

// TestDKIMResultTags: header.d, .s, .a and .b come from the signature.
func TestDKIMResultTags(t *testing.T) {
	k := getKeys(t)
	_, res := newZone(t, keyRecord(t, "example.test", "ed", k.ed))
	vs := defaultSigner(t, signer.InlineKey{Domain: "Example.TEST", Selector: "ed", PrivateKey: writeKey(t, t.TempDir(), "ed.pem", k.ed, false)})
	signed := vouchSign(t, vs, sampleMessage("alice@example.test"))
	got, _ := verifyRaw(t, LookupTXT(res), signed, 0, 0)
	wantResults(t, got, Pass)
	r := got[0]
	b := signed[strings.Index(signed, " b=")+3:]
	b = strings.Join(strings.Fields(b[:strings.IndexAny(b, ";\n")]), "")
	if r.Domain != "example.test" || r.Selector != "ed" || r.Algorithm != "ed25519-sha256" || r.B != b[:12] || r.Reason != "" {
		t.Errorf("%+v (b=%s)", r, b)
	}
}

// TestDKIMFailures: what goes wrong with a signature and the result each
// gives.
func TestDKIMFailures(t *testing.T) {
	k := getKeys(t)
	srv, res := newZone(t,
		keyRecord(t, "example.test", "rsa", k.rsa2048),
		keyRecord(t, "example.test", "wrong", k.other2048),
		txtRecord("revoked._domainkey.example.test", "v=DKIM1; k=rsa; p="),
		keyRecord(t, "example.test", "r512", k.rsa512),
		keyRecord(t, "example.test", "timeout", k.rsa2048),
		keyRecord(t, "example.test", "servfail", k.rsa2048),
		txtRecord("garbage._domainkey.example.test", "v=DKIM1; k=rsa; p=!!notbase64"),
		keyRecord(t, "example.test", "twice", k.rsa2048),
		keyRecord(t, "example.test", "twice", k.other2048),
	)
	srv.SetFault("timeout._domainkey.example.test", dnstest.Drop)
	srv.SetFault("servfail._domainkey.example.test", dnstest.ServFail)
	lookup := LookupTXT(res)
	msg := sampleMessage("alice@example.test")
	sign := func(sel string, key crypto.Signer) string { return goSign(t, msg, "example.test", sel, key, false) }

	cases := []struct {
		name   string
		signed string
		want   Status
		reason string
	}{
		{"tampered body", strings.Replace(sign("rsa", k.rsa2048), "Hello Bob", "Hello Eve", 1), Fail, "body hash did not verify"},
		{"tampered header", strings.Replace(sign("rsa", k.rsa2048), "Subject: a test", "Subject: a jest", 1), Fail, "signature did not verify"},
		{"wrong key", sign("wrong", k.rsa2048), Fail, "signature did not verify"},
		{"revoked key", sign("revoked", k.rsa2048), PermError, "key revoked"},
		{"no key", sign("missing", k.rsa2048), PermError, "no key for signature"},
		{"unparsable key", sign("garbage", k.rsa2048), PermError, "key syntax error"},
		{"two key records", sign("twice", k.rsa2048), PermError, "multiple TXT records"},
		{"rsa-512", sign("r512", k.rsa512), Policy, "key is too short"},
		{"DNS timeout", sign("timeout", k.rsa2048), TempError, "key unavailable"},
		{"SERVFAIL", sign("servfail", k.rsa2048), TempError, "key unavailable"},
		{"From not signed", strings.Replace(sign("rsa", k.rsa2048), "h=From:", "h=", 1), PermError, "From field not signed"},
		{"malformed tags", "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; garbage\n" + msg, PermError, "malformed signature tags"},
		{"bad d= in signature", strings.Replace(sign("rsa", k.rsa2048), "d=example.test", "d=exa mple..test", 1), PermError, "no key for signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got, _ := verifyRaw(t, lookup, tc.signed, 0, 1000)
			wantResults(t, got, tc.want)
			if len(got) == 1 && !strings.Contains(got[0].Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", got[0].Reason, tc.reason)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestDKIMPolicy pins the go-msgauth wording classifyDKIM relies on for
// RSA keys under 1024 bits (rsa-sha1 and l= are pinned through dkimpy in
// TestDKIMSigners).
func TestDKIMPolicy(t *testing.T) {
	k := getKeys(t)
	_, res := newZone(t, keyRecord(t, "example.test", "r512", k.rsa512))
	got, _ := verifyRaw(t, LookupTXT(res), goSign(t, sampleMessage("a@example.test"), "example.test", "r512", k.rsa512, false), 0, 0)
	wantResults(t, got, Policy)
	if st, _ := classifyDKIM(errors.New("dkim: something else")); st != Fail {
		t.Errorf("unknown error: %s, want fail", st)
	}
	if st, _ := classifyDKIM(nil); st != Pass {
		t.Errorf("nil: %s", st)
	}
}

// TestDKIMMaxSignatures: only the first maxSigs signatures (header order)
// are verified; the rest are counted, not reported.
func TestDKIMMaxSignatures(t *testing.T) {
	k := getKeys(t)
	_, res := newZone(t, keyRecord(t, "example.test", "rsa", k.rsa2048), keyRecord(t, "example.test", "ed", k.ed))
	msg := sampleMessage("alice@example.test")
	signed := goSign(t, msg, "example.test", "rsa", k.rsa2048, false)
	signed = goSign(t, signed, "example.test", "ed", k.ed, false)
	signed = strings.Replace(goSign(t, signed, "example.test", "missing", k.rsa2048, false), "DKIM-Signature", "dkim-signature", 1)
	got, skipped := verifyRaw(t, LookupTXT(res), signed, 2, 0)
	wantResults(t, got, PermError, Pass)
	if skipped != 1 || got[0].Selector != "missing" || got[1].Selector != "ed" {
		t.Errorf("skipped %d, results %+v", skipped, got)
	}
	got, skipped = verifyRaw(t, LookupTXT(res), signed, 0, 3)
	wantResults(t, got, PermError, Pass, Pass)
	if skipped != 0 {
		t.Errorf("skipped %d", skipped)
	}
}

// TestDKIMNoSignature: nothing to verify, the body is ignored.
func TestDKIMNoSignature(t *testing.T) {
	got, skipped := verifyRaw(t, func(string) ([]string, error) {
		t.Fatal("lookup without a signature")
		return nil, nil
	}, sampleMessage("a@example.test"), 0, 0)
	if got != nil || skipped != 0 {
		t.Errorf("%+v %d", got, skipped)
	}
}

// TestDKIMVerifierStopsEarly is the go-msgauth trap: with one signature
// and no key, the verifier returns before reading the body. Writes must
// not block (the pipe is closed with an error), even for a big body.
func TestDKIMVerifierStopsEarly(t *testing.T) {
	lookup := func(string) ([]string, error) {
		return nil, &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}
	}
	hs, _ := splitMessage("DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=x; h=From; bh=AAAA; b=AAAA\nFrom: a@example.test\n\n")
	d := NewDKIM(lookup, 0)
	d.WriteHeaders(hs)
	chunk := bytes.Repeat([]byte("0123456789abcdef\r\n"), 64<<10/18)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 160 { // 10 MiB
			d.Write(chunk)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked after the verifier returned")
	}
	got := d.Close()
	wantResults(t, got, PermError)
}

// TestDKIMAbort: Abort does not wait for a key lookup in progress, and
// the verifier goroutine ends once the lookup does.
func TestDKIMAbort(t *testing.T) {
	release := make(chan struct{})
	lookup := func(string) ([]string, error) {
		<-release
		return nil, &net.DNSError{Err: "timeout", IsTimeout: true, IsTemporary: true}
	}
	before := runtime.NumGoroutine()
	hs, _ := splitMessage("DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=x; h=From; bh=AAAA; b=AAAA\nFrom: a@example.test\n\n")
	d := NewDKIM(lookup, 0)
	d.WriteHeaders(hs) // returns once the header is read; the verifier now waits for the key
	start := time.Now()
	d.Abort()
	d.Write([]byte("body after abort\r\n")) // dropped, must not block
	if time.Since(start) > time.Second {
		t.Error("Abort or Write waited")
	}
	if got := d.Close(); got != nil {
		t.Errorf("results after Abort: %+v", got)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines, %d before", n, before)
	}
}

// FuzzDKIMSignatureTags: the tags read from any DKIM-Signature value hold
// no folding white space and no ";", d= and a= are lower case, b= is a
// prefix of at most bPrefixLen bytes, and writing them back as a
// signature gives the same tags (nothing is lost or invented in between).
func FuzzDKIMSignatureTags(f *testing.F) {
	for _, s := range []string{
		" v=1; a=rsa-sha256; c=relaxed/relaxed; d=Example.COM; s=sel;\n\th=From:To; bh=abc=; b=dGhpcyBpcyBub3QgYSBzaWc\n\t=",
		" d=a; d=b; s=x=y; i=@Example.com; b=\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3", " no tags at all", " ; = ; d ; =x",
		" d = example.com ; s = a b c ; a=ED25519-SHA256; b=\r\n\t a b c d e f g h i j k l m n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := parseSignatureTags(v)
		for _, field := range []string{r.Domain, r.Selector, r.Algorithm, r.Identifier, r.B} {
			if strings.ContainsAny(field, " \t\r\n;") {
				t.Fatalf("%q: field %q", v, field)
			}
		}
		if r.Domain != strings.ToLower(r.Domain) || r.Algorithm != strings.ToLower(r.Algorithm) || len(r.B) > bPrefixLen {
			t.Fatalf("%q: %+v", v, r)
		}
		again := parseSignatureTags(fmt.Sprintf("d=%s; s=%s; a=%s; i=%s; b=%s", r.Domain, r.Selector, r.Algorithm, r.Identifier, r.B))
		if again != r {
			t.Fatalf("%q:\n parsed %+v\nwritten back and parsed %+v", v, r, again)
		}
	})
}
