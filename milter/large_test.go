package milter

import (
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vouch/internal/mtaclient"
)

// TestLargeMessageMemoryIsFlat signs a 50 MiB body: the heap must not
// grow with the message (it is hashed as it streams), and the signature
// must still verify.
func TestLargeMessageMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MiB")
	}
	tb := newTestbed(t, nil)
	headers, _ := mtaclient.Split([]byte(rawMessage("alice@example.test", "", "")))
	const size = 50 << 20

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
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
	r := tb.send(t, &mtaclient.Message{ClientIP: "127.0.0.1", From: "a@example.test", Headers: headers, Body: mtaclient.Lines(size)})
	close(stop)
	if !r.Accepted() {
		t.Fatal("not accepted")
	}
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use: %d KiB before, peak %d KiB (+%d KiB) for a %d MiB body", base.HeapInuse>>10, peak.Load()>>10, growth>>10, size>>20)
	if growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB while signing a %d MiB body", growth>>20, size>>20)
	}
	// Verify by streaming the same body into the verifier.
	head := string(mtaclient.Render(r.Headers, nil))
	verifyStream(t, tb, io.MultiReader(strings.NewReader(head), mtaclient.Lines(size)))
}

// BenchmarkMilterSign is one small message (3 KiB) per milter connection
// through the whole protocol over loopback TCP, signed with RSA-2048: what
// Postfix asks of vouch for each outbound message.
func BenchmarkMilterSign(b *testing.B) {
	benchmarkMilter(b, "alice@example.test")
}

// BenchmarkMilterSignDual signs with RSA-2048 and Ed25519.
func BenchmarkMilterSignDual(b *testing.B) {
	benchmarkMilter(b, "bob@dual.test")
}

func benchmarkMilter(b *testing.B, from string) {
	tb := newTestbed(b, nil)
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 50)
	headers, _ := mtaclient.Split([]byte(rawMessage(from, "MIME-Version: 1.0\nContent-Type: text/plain\n", "")))
	c := mtaclient.NewClient("tcp", tb.addr)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := mtaclient.Send(c, &mtaclient.Message{ClientIP: "127.0.0.1", From: from, Headers: headers, Body: strings.NewReader(body)})
			if err != nil || !r.Accepted() || len(r.Mods) == 0 {
				b.Fatalf("%v %+v", err, r)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
