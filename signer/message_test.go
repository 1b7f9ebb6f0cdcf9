package signer

import (
	"bytes"
	"crypto"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/mailtext"
	"vouch/internal/mtaclient"
)

func TestHeaderKeys(t *testing.T) {
	hs := func(kv ...string) []mailtext.Header {
		var out []mailtext.Header
		for i := 0; i < len(kv); i += 2 {
			out = append(out, mailtext.Header{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name          string
		headers, over []string
		msg           []mailtext.Header
		wantKeys      []string
		wantBlock     string
	}{
		{
			name:    "all instances in config order, oversigned names once more",
			headers: []string{"From", "Subject", "To", "Date", "Cc"},
			over:    []string{"From", "Subject", "Reply-To"},
			msg: hs("Received", " from a by b", "To", " one@x", "From", " a@example.com", "X-Other", " no",
				"Subject", " s", "to", " two@x", "DKIM-Signature", " v=1; old"),
			wantKeys:  []string{"From", "Subject", "To", "To", "From", "Subject", "Reply-To"},
			wantBlock: "To: one@x\r\nFrom: a@example.com\r\nSubject: s\r\nto: two@x\r\n\r\n",
		},
		{
			name:      "config spelling, names listed twice count once",
			headers:   []string{"from", "SUBJECT", "From"},
			msg:       hs("FROM", " a@x", "Subject", " s"),
			wantKeys:  []string{"from", "SUBJECT"},
			wantBlock: "FROM: a@x\r\nSubject: s\r\n\r\n",
		},
		{
			name:      "folded values get CRLF, CRLF kept",
			headers:   []string{"From", "Subject", "References"},
			msg:       hs("From", " a@x", "Subject", " one\n two\n\tthree", "References", " <a@x>\r\n <b@x>"),
			wantKeys:  []string{"From", "Subject", "References"},
			wantBlock: "From: a@x\r\nSubject: one\r\n two\r\n\tthree\r\nReferences: <a@x>\r\n <b@x>\r\n\r\n",
		},
		{
			name:      "no space after the colon is kept",
			headers:   []string{"From"},
			msg:       hs("From", "a@x"),
			wantKeys:  []string{"From"},
			wantBlock: "From:a@x\r\n\r\n",
		},
		{
			name:      "oversign-only name present: every instance plus one",
			headers:   []string{"From"},
			over:      []string{"X-Mailer"},
			msg:       hs("X-Mailer", " m1", "From", " a@x", "X-Mailer", " m2"),
			wantKeys:  []string{"From", "X-Mailer", "X-Mailer", "X-Mailer"},
			wantBlock: "X-Mailer: m1\r\nFrom: a@x\r\nX-Mailer: m2\r\n\r\n",
		},
		{
			name:      "oversigned header absent",
			headers:   []string{"From", "Reply-To"},
			over:      []string{"Reply-To"},
			msg:       hs("From", " a@x"),
			wantKeys:  []string{"From", "Reply-To"},
			wantBlock: "From: a@x\r\n\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := New(Config{Headers: tc.headers, Oversign: tc.over})
			if err != nil {
				t.Fatal(err)
			}
			keys, block := s.headerKeys(tc.msg)
			if !slices.Equal(keys, tc.wantKeys) {
				t.Errorf("h= %q, want %q", keys, tc.wantKeys)
			}
			if string(block) != tc.wantBlock {
				t.Errorf("block %q, want %q", block, tc.wantBlock)
			}
		})
	}
}

// refCRLF is the reference: bare LF → CRLF over the whole stream.
func refCRLF(b []byte) []byte { return mtaclient.ToCRLF(b) }

func TestCRLFWriterChunks(t *testing.T) {
	feed := func(chunks [][]byte) []byte {
		var out bytes.Buffer
		var c mailtext.CRLF
		for _, ch := range chunks {
			out.Write(c.Fix(ch))
		}
		return out.Bytes()
	}
	fixed := []struct {
		name   string
		chunks []string
	}{
		{"CR at end of chunk, LF at start of next", []string{"a\r", "\nb\r\n"}},
		{"LF alone at start of chunk", []string{"a", "\nb"}},
		{"lone CR chunks", []string{"\r", "\r", "\n", "\n"}},
		{"bare LF first byte of stream", []string{"\n", "x\n"}},
		{"CRLF untouched", []string{"one\r\ntwo\r\n"}},
		{"empty chunks", []string{"", "a\r", "", "\n", ""}},
		{"mixed", []string{"l1\nl2\r\nl3\r", "\r\n\n"}},
	}
	for _, tc := range fixed {
		var chunks [][]byte
		for _, c := range tc.chunks {
			chunks = append(chunks, []byte(c))
		}
		got, want := feed(chunks), refCRLF([]byte(strings.Join(tc.chunks, "")))
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %q, want %q", tc.name, got, want)
		}
	}

	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("ab\r\n\n\r")
	for range 5000 {
		in := make([]byte, rng.IntN(200))
		for i := range in {
			in[i] = alphabet[rng.IntN(len(alphabet))]
		}
		var chunks [][]byte
		for rest := in; len(rest) > 0; {
			n := rng.IntN(min(len(rest), 8) + 1)
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		orig := append([]byte(nil), in...)
		if got, want := feed(chunks), refCRLF(in); !bytes.Equal(got, want) {
			t.Fatalf("input %q in chunks %q: %q, want %q", in, chunks, got, want)
		}
		if !bytes.Equal(in, orig) {
			t.Fatal("the writer changed its input")
		}
	}
}

// signRaw signs a message (LF or CRLF) the way the milter does: headers as
// Postfix hands them over, the body in chunks, the signatures on top.
func signRaw(t testing.TB, s *Signer, raw string) []byte {
	t.Helper()
	mh, body := mtaclient.Split([]byte(raw))
	headers := make([]mailtext.Header, len(mh))
	for i, h := range mh {
		headers[i] = mailtext.Header(h)
	}
	local, domain, err := FromAddress(headers)
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := s.Lookup(local, domain)
	if err != nil || len(reqs) == 0 {
		t.Fatalf("lookup %s@%s: %v, %v", local, domain, reqs, err)
	}
	m, err := s.NewMessage(reqs, headers)
	if err != nil {
		t.Fatal(err)
	}
	for rest := body; len(rest) > 0; {
		n := min(len(rest), 7)
		if _, err := m.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	values, err := m.Finish()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range slices.Backward(values) {
		mh = append([]mtaclient.Header{{Name: "DKIM-Signature", Value: v}}, mh...)
	}
	return mtaclient.Render(mh, body)
}

func verifyWith(t testing.TB, msg []byte, txt map[string]string) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if v, ok := txt[name]; ok {
			return []string{v}, nil
		}
		return nil, fmt.Errorf("no TXT for %s", name)
	}})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// testSigner has an RSA and an Ed25519 key for example.com and the TXT
// records that go with them.
func testSigner(t testing.TB, cfg Config) (*Signer, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	txt := map[string]string{}
	for _, k := range []struct {
		sel string
		key crypto.Signer
	}{{"rsa", testRSAKey(t)}, {"ed", testEdKey(t)}} {
		path := writeFile(t, dir, k.sel+".private", string(pkcs8PEM(t, k.key)), 0o600)
		cfg.Keys = append(cfg.Keys, InlineKey{Domain: "example.com", Selector: k.sel, PrivateKey: path})
		p, err := PublicKeyRecord(k.key)
		if err != nil {
			t.Fatal(err)
		}
		txt[k.sel+"._domainkey.example.com"] = "v=DKIM1; k=" + Algorithm(k.key) + "; p=" + p
	}
	if cfg.Headers == nil {
		cfg.Headers = []string{"From", "To", "Subject", "Date", "Message-ID", "Cc"}
	}
	s, _, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, txt
}

func TestSignAndVerify(t *testing.T) {
	s, txt := testSigner(t, Config{Oversign: []string{"From", "Subject"}, SignatureTTL: time.Hour})
	raw := "Received: from x by y; Wed, 25 Nov 2026 10:00:00 +0000\n" +
		"From: =?utf-8?q?J=C3=BCrgen?= <juergen@Example.COM>\n" +
		"To: Bob <bob@remote.test>,\n  Carol <carol@remote.test>\n" +
		"Subject: folded\n\tsubject\n" +
		"Date: Wed, 25 Nov 2026 10:00:00 +0000\n" +
		"X-Unsigned: anything\n" +
		"\n" +
		"line one   \n\nline three\twith tab\r\n\r\n\n\n"
	msg := signRaw(t, s, raw)
	vs := verifyWith(t, msg, txt)
	if len(vs) != 2 {
		t.Fatalf("%d signatures", len(vs))
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Fatalf("d=%s: %v\n%s", v.Domain, v.Err, msg)
		}
		if v.Domain != "example.com" || v.Expiration.IsZero() {
			t.Fatalf("d=%s x=%v", v.Domain, v.Expiration)
		}
		if want := []string{"From", "To", "Subject", "Date", "From", "Subject"}; !slices.Equal(v.HeaderKeys, want) {
			t.Fatalf("h= %q, want %q", v.HeaderKeys, want)
		}
	}
	if !bytes.Contains(msg, []byte("a=rsa-sha256")) || !bytes.Contains(msg, []byte("a=ed25519-sha256")) || !bytes.Contains(msg, []byte("c=relaxed/relaxed")) {
		t.Fatalf("algorithms or canonicalization:\n%s", msg)
	}

	// An added copy of an oversigned header breaks both signatures.
	tampered := append([]byte("Subject: injected\r\n"), msg...)
	for _, v := range verifyWith(t, tampered, txt) {
		if v.Err == nil {
			t.Fatal("a signature survived an added Subject")
		}
	}
	// So does a changed body.
	for _, v := range verifyWith(t, bytes.Replace(msg, []byte("line one"), []byte("line 1"), 1), txt) {
		if v.Err == nil {
			t.Fatal("a signature survived a changed body")
		}
	}
}

// TestSignIdentity: the SigningTable's identity becomes i=.
func TestSignIdentity(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "k.private", string(pkcs8PEM(t, testRSAKey(t))), 0o600)
	kt := writeFile(t, dir, "KeyTable", "k %:sel:"+filepath.ToSlash(path)+"\n", 0o644)
	s, _, err := New(Config{KeyTable: kt, SigningTable: "refile:" + writeFile(t, dir, "st", "*@example.com k:news@%\n", 0o644), Headers: []string{"From"}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := PublicKeyRecord(testRSAKey(t))
	msg := signRaw(t, s, "From: a@example.com\n\nx\n")
	vs := verifyWith(t, msg, map[string]string{"sel._domainkey.example.com": "v=DKIM1; p=" + p})
	if len(vs) != 1 || vs[0].Err != nil || vs[0].Identifier != "news@example.com" || vs[0].Domain != "example.com" {
		t.Fatalf("%+v\n%s", vs[0], msg)
	}
}

// TestBareLFBodySigned: a body with bare LF is signed as its CRLF form,
// whatever the chunking.
func TestBareLFBodySigned(t *testing.T) {
	s, txt := testSigner(t, Config{})
	mh, _ := mtaclient.Split([]byte("From: a@example.com\nSubject: lf\n\n"))
	headers := make([]mailtext.Header, len(mh))
	for i, h := range mh {
		headers[i] = mailtext.Header(h)
	}
	body := "one\ntwo\r\nthree\r\r\nfour\n\n"
	reqs, _ := s.Lookup("a", "example.com")
	for _, split := range []int{1, 3, 4, 5, len(body)} {
		m, err := s.NewMessage(reqs, headers)
		if err != nil {
			t.Fatal(err)
		}
		for rest := []byte(body); len(rest) > 0; {
			n := min(split, len(rest))
			m.Write(rest[:n])
			rest = rest[n:]
		}
		values, err := m.Finish()
		if err != nil {
			t.Fatal(err)
		}
		var out []mtaclient.Header
		for _, v := range values {
			out = append(out, mtaclient.Header{Name: "DKIM-Signature", Value: v})
		}
		msg := mtaclient.Render(append(out, mh...), mtaclient.ToCRLF([]byte(body)))
		for _, v := range verifyWith(t, msg, txt) {
			if v.Err != nil {
				t.Fatalf("split %d: %v", split, v.Err)
			}
		}
	}
}

func TestMessageAbort(t *testing.T) {
	s, _ := testSigner(t, Config{})
	reqs, _ := s.Lookup("a", "example.com")
	m, err := s.NewMessage(reqs, []mailtext.Header{{Name: "From", Value: " a@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	m.Write([]byte("partial"))
	m.Abort()
	m.Abort() // twice is fine
	if values, err := m.Finish(); err != nil || len(values) != 0 {
		t.Fatalf("Finish after Abort: %v, %v", values, err)
	}
}

// benchMessage is a typical message: a dozen headers and a text body.
func benchMessage(bodySize int) ([]mailtext.Header, []byte) {
	raw := "Received: from desk.example.com (desk.example.com [10.1.2.3])\n\tby mx.example.com (Postfix) with ESMTPSA id 4TESTQID\n\tfor <bob@remote.test>; Wed, 25 Nov 2026 10:00:00 +0000 (UTC)\n" +
		"From: Alice Example <alice@example.com>\nTo: Bob <bob@remote.test>\nCc: Carol <carol@remote.test>\n" +
		"Subject: Quarterly numbers\nDate: Wed, 25 Nov 2026 10:00:00 +0000\nMessage-ID: <20261125100000.1234@example.com>\n" +
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\nUser-Agent: bench\n\n"
	mh, _ := mtaclient.Split([]byte(raw))
	headers := make([]mailtext.Header, len(mh))
	for i, h := range mh {
		headers[i] = mailtext.Header(h)
	}
	line := "The quick brown fox jumps over the lazy dog; Grüße aus Köln.  \r\n"
	var body []byte
	for len(body) < bodySize {
		body = append(body, line...)
	}
	return headers, body[:bodySize]
}

func benchSign(b *testing.B, sel string, bodySize int) {
	s, _ := testSigner(b, Config{Headers: []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}, Oversign: []string{"From", "Subject"}})
	all, _ := s.Lookup("alice", "example.com")
	var reqs []Request
	for _, r := range all {
		if r.Key.Selector == sel {
			reqs = append(reqs, r)
		}
	}
	headers, body := benchMessage(bodySize)
	b.SetBytes(int64(bodySize))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m, err := s.NewMessage(reqs, headers)
		if err != nil {
			b.Fatal(err)
		}
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 65535) // Postfix's body chunks
			if _, err := m.Write(rest[:n]); err != nil {
				b.Fatal(err)
			}
			rest = rest[n:]
		}
		if _, err := m.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignSmall(b *testing.B)   { benchSign(b, "rsa", 3<<10) }
func BenchmarkSignEd25519(b *testing.B) { benchSign(b, "ed", 3<<10) }
func BenchmarkSign1MiB(b *testing.B)    { benchSign(b, "rsa", 1<<20) }
