package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"vouch/internal/mtaclient"
	"vouch/internal/testutil"
	"vouch/milter"
	"vouch/signer"
)

// vouchKey writes a key for domain/selector and returns the path of the
// private key and its DKIM TXT record file.
func vouchKey(t *testing.T, dir, domain, selector, alg string) (string, string) {
	t.Helper()
	key, pemData, err := signer.GenerateKey(alg, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join(dir, selector+".private")
	if err := os.WriteFile(priv, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := signer.PublicKeyRecord(key)
	if err != nil {
		t.Fatal(err)
	}
	// BIND syntax, split into strings, as genkey writes it.
	rec := "v=DKIM1; k=" + signer.Algorithm(key) + "; p=" + p
	var parts []string
	for len(rec) > 0 {
		n := min(len(rec), 250)
		parts = append(parts, `"`+rec[:n]+`"`)
		rec = rec[n:]
	}
	txt := filepath.Join(dir, selector+".txt")
	if err := os.WriteFile(txt, []byte(selector+"._domainkey\tIN\tTXT\t( "+strings.Join(parts, "\n\t  ")+" )  ; ----- DKIM key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv, txt
}

// startVouch runs vouch's milter in-process, as milter/milter_test.go
// does, on a loopback TCP listener or a unix socket.
func startVouch(t *testing.T, network string, keys []signer.InlineKey) string {
	t.Helper()
	sg, _, err := signer.New(signer.Config{
		InternalHosts:   []string{"127.0.0.1", "::1"},
		RequireSafeKeys: true,
		Headers:         []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"},
		Oversign:        []string{"From", "Subject"},
		Keys:            keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := milter.NewServer(&milter.Env{Signer: sg, MaxHeaders: 1 << 20, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), AuthservID: "mx.example.test"}, milter.Limits{ReadTimeout: time.Minute})
	if network == "unix" {
		path := filepath.Join(t.TempDir(), "vouch.sock")
		testutil.Serve(t, srv, "unix", path)
		return "unix:" + path
	}
	ln := testutil.Serve(t, srv, "tcp4", "127.0.0.1:0")
	return "inet:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:") + "@127.0.0.1"
}

func checkReport(t *testing.T, rep *Report, want int64) {
	t.Helper()
	t.Logf("%s\n%s", MarkdownHeader(), rep.MarkdownRow())
	if rep.Errors != 0 || rep.OK != want || rep.Messages != want {
		t.Fatalf("messages %d, ok %d, errors %d %v (first: %q); want %d without errors", rep.Messages, rep.OK, rep.Errors, rep.ErrorKinds, rep.FirstErrors, want)
	}
	if rep.Sampled == 0 || rep.Verified != rep.Sampled || rep.VerifyFailed != 0 {
		t.Fatalf("verified %d of %d sampled, %d failed: %q", rep.Verified, rep.Sampled, rep.VerifyFailed, rep.VerifyErrors)
	}
	l := rep.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Fatalf("latency percentiles out of order: %+v", l)
	}
	if rep.MsgsPerSec <= 0 || rep.Bytes <= 0 || rep.MBPerSec <= 0 {
		t.Fatalf("no throughput: %+v", rep)
	}
}

// TestLoadAgainstVouch drives the in-process vouch milter at c=4 and
// checks that every message is signed and every sampled signature
// verifies, over TCP and a unix socket, one and several messages per
// connection, RSA and RSA+Ed25519.
func TestLoadAgainstVouch(t *testing.T) {
	dir := t.TempDir()
	rsaPriv, rsaTXT := vouchKey(t, dir, "example.com", "rsa1", "rsa")
	edPriv, _ := vouchKey(t, dir, "dual.example", "ed1", "ed25519")
	rsa2Priv, _ := vouchKey(t, dir, "dual.example", "rsa2", "rsa")
	keys := []signer.InlineKey{
		{Domain: "example.com", Selector: "rsa1", PrivateKey: rsaPriv},
		{Domain: "dual.example", Selector: "ed1", PrivateKey: edPriv},
		{Domain: "dual.example", Selector: "rsa2", PrivateKey: rsa2Priv},
	}
	rsaKey, err := LoadPubKey(rsaTXT)
	if err != nil {
		t.Fatal(err)
	}
	if rsaKey.Selector != "rsa1" || rsaKey.Alg != "rsa" {
		t.Fatalf("TXT record file: selector %q alg %q", rsaKey.Selector, rsaKey.Alg)
	}
	edKey, err := LoadPubKey(edPriv) // a private key file: its public half
	if err != nil {
		t.Fatal(err)
	}
	rsa2Key, err := LoadPubKey("rsa2=" + rsa2Priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, network, domain, corpus string
		perConn                       int
		keys                          []*PubKey
		sigs                          int
	}{
		{"tcp", "tcp", "example.com", CorpusSmall, 1, []*PubKey{rsaKey}, 1},
		{"unix per-conn 7", "unix", "example.com", CorpusSmall, 7, []*PubKey{rsaKey}, 1},
		{"dual keys", "tcp", "dual.example", CorpusSmall, 1, []*PubKey{rsa2Key, edKey}, 2},
		{"mixed sizes", "tcp", "example.com", CorpusMixed, 3, []*PubKey{rsaKey}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := startVouch(t, tc.network, keys)
			c, err := NewCorpus(tc.corpus, 7, 0, tc.domain, "")
			if err != nil {
				t.Fatal(err)
			}
			count := int64(300)
			if tc.corpus == CorpusMixed {
				count = 60
			}
			rep, err := Run(context.Background(), Config{
				Socket: sock, Concurrency: 4, PerConn: tc.perConn, Count: count, Corpus: c,
				ClientIP: "127.0.0.1", Expect: ExpectSign, VerifyEvery: 10,
				Verifier: &Verifier{Keys: tc.keys}, PIDs: []int{os.Getpid()}, ResetHWM: true, Label: tc.name,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, count)
			if rep.Signatures != rep.Verified*tc.sigs {
				t.Fatalf("%d signatures verified on %d messages, want %d each", rep.Signatures, rep.Verified, tc.sigs)
			}
			wantConns := (count + int64(tc.perConn) - 1) / int64(tc.perConn)
			if rep.Connections < wantConns || rep.Connections > wantConns+4 {
				t.Fatalf("%d connections for %d messages at %d per connection", rep.Connections, count, tc.perConn)
			}
			if rep.Proc == nil || rep.Proc.Error != "" || rep.Proc.PeakRSSMiB <= 0 || rep.Proc.RSSSamples == 0 {
				t.Fatalf("process stats: %+v", rep.Proc)
			}
		})
	}
}

// TestWrongKeyFailsVerification: a signature checked against another key
// must be reported as a verification failure, not as verified.
func TestWrongKeyFailsVerification(t *testing.T) {
	dir := t.TempDir()
	priv, _ := vouchKey(t, dir, "example.com", "rsa1", "rsa")
	other, _ := vouchKey(t, t.TempDir(), "example.com", "rsa1", "rsa")
	sock := startVouch(t, "tcp", []signer.InlineKey{{Domain: "example.com", Selector: "rsa1", PrivateKey: priv}})
	k, err := LoadPubKey(other)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewCorpus(CorpusSmall, 1, 0, "example.com", "")
	rep, err := Run(context.Background(), Config{Socket: sock, Concurrency: 2, Count: 20, Corpus: c, ClientIP: "127.0.0.1", VerifyEvery: 5, Verifier: &Verifier{Keys: []*PubKey{k}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 || rep.Sampled != 4 || rep.VerifyFailed != 4 || rep.Verified != 0 {
		t.Fatalf("errors %d, sampled %d, verified %d, failed %d", rep.Errors, rep.Sampled, rep.Verified, rep.VerifyFailed)
	}
}

// refuser is a milter that answers resp at one stage.
type refuser struct {
	gomilter.NoOpMilter
	stage string
	resp  *gomilter.Response
}

func (r *refuser) at(stage string) (*gomilter.Response, error) {
	if stage == r.stage {
		return r.resp, nil
	}
	return gomilter.RespContinue, nil
}

func (r *refuser) Connect(string, string, uint16, string, gomilter.Modifier) (*gomilter.Response, error) {
	return r.at("connect")
}
func (r *refuser) MailFrom(string, string, gomilter.Modifier) (*gomilter.Response, error) {
	return r.at("mail")
}
func (r *refuser) EndOfMessage(gomilter.Modifier) (*gomilter.Response, error) {
	return r.at("eom")
}

func startRefuser(t *testing.T, stage string, resp *gomilter.Response) string {
	t.Helper()
	srv := gomilter.NewServer(gomilter.WithMilter(func() gomilter.Milter { return &refuser{stage: stage, resp: resp} }))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "inet:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:") + "@127.0.0.1"
}

// TestRefusalsAreErrors: a milter that tempfails or rejects, or accepts
// without signing, is counted as errors of the right kind.
func TestRefusalsAreErrors(t *testing.T) {
	reject550, _ := gomilter.RejectWithCodeAndReason(550, "5.7.1 no")
	for _, tc := range []struct {
		stage  string
		resp   *gomilter.Response
		expect string
		kind   string
	}{
		{"mail", gomilter.RespTempFail, ExpectSign, "tempfail@mail"},
		{"eom", gomilter.RespTempFail, ExpectSign, "tempfail@eom"},
		{"eom", reject550, ExpectSign, "reject@eom"},
		{"connect", gomilter.RespReject, ExpectSign, "reject@connect"},
		{"none", nil, ExpectSign, "unsigned"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			sock := startRefuser(t, tc.stage, tc.resp)
			c, _ := NewCorpus(CorpusSmall, 1, 0, "example.com", "")
			rep, err := Run(context.Background(), Config{Socket: sock, Concurrency: 4, PerConn: 2, Count: 100, Corpus: c, ClientIP: "127.0.0.1", Expect: tc.expect, VerifyEvery: 10})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Messages != 100 || rep.Errors != 100 || rep.ErrorKinds[tc.kind] != 100 || rep.OK != 0 {
				t.Fatalf("messages %d, ok %d, errors %d %v; want 100 %s", rep.Messages, rep.OK, rep.Errors, rep.ErrorKinds, tc.kind)
			}
			if !strings.Contains(rep.MarkdownRow(), tc.kind+"=100") {
				t.Fatalf("row does not show the errors: %s", rep.MarkdownRow())
			}
		})
	}
	t.Run("nothing listens", func(t *testing.T) {
		c, _ := NewCorpus(CorpusSmall, 1, 0, "example.com", "")
		rep, err := Run(context.Background(), Config{Socket: "unix:" + filepath.Join(t.TempDir(), "none.sock"), Concurrency: 2, Count: 10, Corpus: c, ClientIP: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Errors != 10 || rep.ErrorKinds["io@connect"] != 10 {
			t.Fatalf("errors %d %v", rep.Errors, rep.ErrorKinds)
		}
	})
}

func render(t *testing.T, s Spec) []byte {
	t.Helper()
	body, err := io.ReadAll(s.Body())
	if err != nil {
		t.Fatal(err)
	}
	return mtaclient.Render(s.Headers, body)
}

func checkCRLF(t *testing.T, msg []byte) {
	t.Helper()
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') || c == '\r' && (i+1 == len(msg) || msg[i+1] != '\n') {
			t.Fatalf("bare CR or LF at %d of %d: %q", i, len(msg), msg[max(0, i-20):min(len(msg), i+20)])
		}
	}
	if !bytes.HasSuffix(msg, []byte("\r\n")) {
		t.Fatalf("message does not end in CRLF")
	}
}

func TestCorpus(t *testing.T) {
	sizes := func(kind string, seed uint64, n int) []int64 {
		c, err := NewCorpus(kind, seed, 64<<10, "example.com", "")
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for i := range n {
			out = append(out, c.Spec(uint64(i)).Size)
		}
		return out
	}
	a, b, other := sizes(CorpusMixed, 42, 2000), sizes(CorpusMixed, 42, 2000), sizes(CorpusMixed, 43, 2000)
	if !equal(a, b) {
		t.Fatal("same seed, different sizes")
	}
	if equal(a, other) {
		t.Fatal("different seeds, same sizes")
	}
	var large int
	for _, s := range a {
		if s < smallMin || s > mixedMax {
			t.Fatalf("mixed size %d out of [%d, %d]", s, smallMin, mixedMax)
		}
		if s > 1<<20 {
			large++
		}
	}
	if large == 0 || large > 100 {
		t.Fatalf("%d of 2000 mixed messages above 1 MiB, want about 2%%", large)
	}
	for _, s := range sizes(CorpusSmall, 9, 2000) {
		if s < smallMin || s > smallMax {
			t.Fatalf("small size %d out of [%d, %d]", s, smallMin, smallMax)
		}
	}
	for _, s := range sizes(CorpusHuge, 9, 3) {
		if s != 64<<10 {
			t.Fatalf("huge size %d, want %d", s, 64<<10)
		}
	}

	// Rendered messages have exactly the announced size, CRLF only, and
	// the same bytes for the same seed and index.
	for _, kind := range []string{CorpusSmall, CorpusMixed} {
		c1, _ := NewCorpus(kind, 5, 0, "example.com", "")
		c2, _ := NewCorpus(kind, 5, 0, "example.com", "")
		for i := range uint64(60) {
			s := c1.Spec(i)
			msg := render(t, s)
			if int64(len(msg)) != s.Size {
				t.Fatalf("%s message %d: %d bytes, spec says %d", kind, i, len(msg), s.Size)
			}
			checkCRLF(t, msg)
			if sha256.Sum256(msg) != sha256.Sum256(render(t, c2.Spec(i))) {
				t.Fatalf("%s message %d differs between two corpora with the same seed", kind, i)
			}
		}
	}
	// Headers are given as Postfix gives them: a leading space, folded
	// lines joined by a bare LF.
	c, _ := NewCorpus(CorpusSmall, 1, 0, "example.com", "")
	folded := false
	for i := range uint64(50) {
		for _, h := range c.Spec(i).Headers {
			if !strings.HasPrefix(h.Value, " ") || strings.Contains(h.Value, "\r") {
				t.Fatalf("header %s:%q", h.Name, h.Value)
			}
			folded = folded || h.Name == "Subject" && strings.Contains(h.Value, "\n\t")
		}
	}
	if !folded {
		t.Fatal("no folded Subject in 50 messages")
	}
}

// TestHugeBodyIsStreamed reads a 64 MiB body in 64 KiB chunks without the
// heap growing with it.
func TestHugeBodyIsStreamed(t *testing.T) {
	c, err := NewCorpus(CorpusHuge, 1, 64<<20, "example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Spec(0)
	var n int64
	var last []byte
	buf := make([]byte, 65535)
	r := s.Body()
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if k > 0 {
			last = append(last[:0], buf[max(0, k-2):k]...)
		}
		if err == io.EOF {
			break
		}
	}
	if n != s.BodySize() || string(last) != "\r\n" {
		t.Fatalf("body %d bytes ending %q, want %d ending CRLF", n, last, s.BodySize())
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "64KiB": 64 << 10, "10MiB": 10 << 20, "1G": 1 << 30, "2GiB": 2 << 30, "5k": 5 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseSize("ten"); err == nil {
		t.Error("parseSize(ten): no error")
	}
}

func TestLoadPubKeyFormats(t *testing.T) {
	dir := t.TempDir()
	priv, txt := vouchKey(t, dir, "example.com", "sel", "rsa")
	fromTXT, err := LoadPubKey(txt)
	if err != nil {
		t.Fatal(err)
	}
	fromPriv, err := LoadPubKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	// The DER of the private key, and the PEM public key.
	pemData, _ := os.ReadFile(priv)
	blk, _ := pem.Decode(pemData)
	der := filepath.Join(dir, "key.der")
	os.WriteFile(der, blk.Bytes, 0o600)
	fromDER, err := LoadPubKey(der)
	if err != nil {
		t.Fatal(err)
	}
	p := func(k *PubKey) string { _, v, _ := strings.Cut(k.Record, "p="); return strings.ReplaceAll(v, " ", "") }
	if p(fromTXT) != p(fromPriv) || p(fromPriv) != p(fromDER) {
		t.Fatalf("different keys:\n%s\n%s\n%s", fromTXT.Record, fromPriv.Record, fromDER.Record)
	}
	if _, err := LoadPubKey(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file: no error")
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFloodAgainstVouch: with hostile connections announcing 4 MiB
// packets (before and after negotiation), vouch closes them and ordinary
// mail is signed meanwhile.
func TestFloodAgainstVouch(t *testing.T) {
	dir := t.TempDir()
	priv, txt := vouchKey(t, dir, "example.com", "rsa1", "rsa")
	key, err := LoadPubKey(txt)
	if err != nil {
		t.Fatal(err)
	}
	sock := startVouch(t, "tcp", []signer.InlineKey{{Domain: "example.com", Selector: "rsa1", PrivateKey: priv}})
	for _, stage := range []string{FloodOptneg, FloodHeader} {
		t.Run(stage, func(t *testing.T) {
			c, err := NewCorpus(CorpusSmall, 7, 0, "example.com", "")
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), Config{
				Socket: sock, Concurrency: 2, Count: 50, Corpus: c, ClientIP: "127.0.0.1", Expect: ExpectSign,
				VerifyEvery: 10, Verifier: &Verifier{Keys: []*PubKey{key}}, Label: stage,
				Flood: 20, FloodStage: stage, FloodLength: 4 << 20,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, 50)
			f := rep.Flood
			if f == nil || f.Opened < 20 || f.Closed < f.Opened-20 || f.Closed == 0 || f.DialError != 0 {
				t.Fatalf("flood: %+v, want every connection but the last 20 closed by the milter", f)
			}
		})
	}
}
