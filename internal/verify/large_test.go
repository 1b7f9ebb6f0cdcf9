package verify

import (
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"vouch/internal/mailtext"
	"vouch/internal/mtaclient"
	"vouch/signer"
)

// feed writes r to w in chunks of 64 KiB, as Postfix sends a body.
func feed(t testing.TB, w io.Writer, r io.Reader) {
	t.Helper()
	buf := make([]byte, 65535)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				t.Fatal(werr)
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestDKIMLargeMessageMemoryIsFlat verifies two signatures (RSA and
// Ed25519, so go-msgauth's parallel path) over a 100 MiB body (25 MiB
// under the race detector, which makes it ten times slower): the heap
// must not grow with the message, and both must pass.
func TestDKIMLargeMessageMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB")
	}
	size := int64(100 << 20)
	if raceEnabled {
		size = 25 << 20
	}
	k := getKeys(t)
	_, res := newZone(t, keyRecord(t, "example.test", "rsa", k.rsa2048), keyRecord(t, "example.test", "ed", k.ed))
	dir := t.TempDir()
	vs := defaultSigner(t,
		signer.InlineKey{Domain: "example.test", Selector: "rsa", PrivateKey: writeKey(t, dir, "rsa.pem", k.rsa2048, false)},
		signer.InlineKey{Domain: "example.test", Selector: "ed", PrivateKey: writeKey(t, dir, "ed.pem", k.ed, false)},
	)
	hs, _ := splitMessage(sampleMessage("alice@example.test"))
	reqs, err := vs.Lookup("alice", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	sm, err := vs.NewMessage(reqs, hs)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, sm, mtaclient.Lines(size))
	values, err := sm.Finish()
	if err != nil {
		t.Fatal(err)
	}
	var signed []mailtext.Header
	for _, v := range values {
		signed = append(signed, mailtext.Header{Name: "DKIM-Signature", Value: v})
	}
	signed = append(signed, hs...)

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	start := time.Now()
	d := NewDKIM(LookupTXT(res), 0)
	d.WriteHeaders(signed)
	feed(t, d, mtaclient.Lines(size))
	got := d.Close()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	wantResults(t, got, Pass, Pass)
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("verified a %d MiB body in %v (%.0f MiB/s): heap in use %d KiB before, peak %d KiB (%+d KiB)",
		size>>20, elapsed.Round(time.Millisecond), float64(size>>20)/elapsed.Seconds(), base.HeapInuse>>10, peak.Load()>>10, growth>>10)
	if growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB while verifying a %d MiB body", growth>>20, size>>20)
	}
}
