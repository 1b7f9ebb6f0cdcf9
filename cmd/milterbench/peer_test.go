package main

import (
	"context"
	"net"
	"testing"
)

// TestPeers loads the two reference milters as vouch is loaded: the naive
// signer's signatures must verify (else its row would compare vouch with
// a signer that does not work), and the no-op milter must accept every
// message without a signature (so -expect sign reports every one as an
// error: proof that the load tool tells the two apart).
func TestPeers(t *testing.T) {
	priv, txt := vouchKey(t, t.TempDir(), "example.com", "mail", "rsa")
	key, err := loadSigningKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPubKey(txt)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer, expect string
		wantErrors   bool
	}{
		{PeerNaive, ExpectSign, false},
		{PeerNoop, ExpectAccept, false},
		{PeerNoop, ExpectSign, true},
	} {
		t.Run(tc.peer+" expect "+tc.expect, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				done <- servePeer(ln, PeerConfig{Kind: tc.peer, Domain: "example.com", Selector: "mail", Key: key})
			}()
			defer func() {
				ln.Close()
				if err := <-done; err != nil {
					t.Errorf("servePeer: %v", err)
				}
			}()
			c, err := NewCorpus(CorpusMixed, 3, 0, "example.com", "")
			if err != nil {
				t.Fatal(err)
			}
			const count = 60
			rep, err := Run(context.Background(), Config{
				Socket: "inet:" + portOf(t, ln) + "@127.0.0.1", Concurrency: 4, PerConn: 2, Count: count, Corpus: c,
				ClientIP: "127.0.0.1", Expect: tc.expect, VerifyEvery: 3, Verifier: &Verifier{Keys: []*PubKey{pub}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantErrors {
				if rep.Errors != count {
					t.Fatalf("%d of %d unsigned messages counted as errors", rep.Errors, count)
				}
				return
			}
			if tc.expect == ExpectSign {
				checkReport(t, rep, count) // every sampled signature verified
			} else if rep.Errors != 0 || rep.OK != count || rep.Sampled != 0 {
				t.Fatalf("noop: %d ok, %d errors, %d signatures sampled; want %d ok", rep.OK, rep.Errors, rep.Sampled, count)
			}
		})
	}
}

func portOf(t *testing.T, ln net.Listener) string {
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}
