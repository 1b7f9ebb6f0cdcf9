package verify

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"vouch/internal/dnstest"
	"vouch/signer"
)

// TestMessage runs the milter's sequence: NewMessage at MAIL FROM, Headers
// at end of headers, Write per chunk, Finish at end of message.
func TestMessage(t *testing.T) {
	k := getKeys(t)
	srv, res := newZone(t,
		keyRecord(t, "example.test", "rsa", k.rsa2048),
		txtRecord("example.test", "v=spf1 ip4:192.0.2.1 -all"),
		txtRecord("_dmarc.example.test", "v=DMARC1; p=reject"),
		txtRecord("bounces.example.test", "v=spf1 ip4:192.0.2.1 -all"),
		txtRecord("slow.test", "v=spf1 -all"),
	)
	srv.SetFault("slow.test", dnstest.Drop)
	vs := defaultSigner(t, signer.InlineKey{Domain: "example.test", Selector: "rsa", PrivateKey: writeKey(t, t.TempDir(), "k.pem", k.rsa2048, false)})
	signed := vouchSign(t, vs, sampleMessage("alice@example.test"))
	unsigned := sampleMessage("alice@example.test")
	cfg := Config{Resolver: res, Budget: 2 * time.Second}
	ip := netip.MustParseAddr("192.0.2.1")

	run := func(ip netip.Addr, sender, raw string) Results {
		m := NewMessage(cfg, ip, "mail.example.test", sender)
		hs, body := splitMessage(raw)
		m.Headers(hs)
		for len(body) > 0 {
			n := min(len(body), 100)
			m.Write(body[:n])
			body = body[n:]
		}
		return m.Finish()
	}

	r := run(ip, "alice@example.test", signed)
	if len(r.DKIM) != 1 || r.DKIM[0].Status != Pass || r.SPF.Status != Pass || r.DMARC.Status != Pass ||
		r.DMARC.AlignedDKIM != "example.test" || r.DMARC.AlignedSPF != "example.test" {
		t.Errorf("signed, SPF pass: %+v", r)
	}
	ar := FormatAuthResults("mx.example.org", IPRev{Result: Pass, IP: ip}, r)
	for _, want := range []string{"dkim=pass header.d=example.test header.s=rsa", "spf=pass smtp.mailfrom=alice@example.test", "dmarc=pass (p=reject dis=none) header.from=example.test", "iprev=pass policy.iprev=192.0.2.1"} {
		if !strings.Contains(ar, want) {
			t.Errorf("no %q in\n%s", want, ar)
		}
	}

	r = run(netip.MustParseAddr("198.51.100.1"), "alice@example.test", unsigned)
	if len(r.DKIM) != 0 || r.SPF.Status != Fail || r.DMARC.Status != Fail || r.DMARC.Disposition != DispReject {
		t.Errorf("forged: %+v", r)
	}
	r = run(ip, "", strings.Replace(signed, "Hello Bob", "Hello Eve", 1))
	if r.DKIM[0].Status != Fail || r.SPF.Status != None || r.SPF.Identity != "helo" || r.DMARC.Status != Fail {
		t.Errorf("tampered, null sender: %+v", r)
	}
	r = run(ip, "x@bounces.example.test", unsigned)
	if r.SPF.Status != Pass || r.DMARC.Status != Pass || r.DMARC.AlignedSPF != "bounces.example.test" {
		t.Errorf("relaxed SPF alignment: %+v", r)
	}
	r = run(ip, "x@slow.test", unsigned)
	if r.SPF.Status != TempError || r.DMARC.Status != Fail {
		t.Errorf("SPF timeout, unaligned: %+v", r)
	}

	// Finish without headers: no From, DMARC permerror.
	m := NewMessage(cfg, ip, "mail.example.test", "alice@example.test")
	if r := m.Finish(); r.SPF.Status != Pass || r.DMARC.Status != PermError || r.DKIM != nil {
		t.Errorf("no headers: %+v", r)
	}
	if r := m.Finish(); r.SPF.Status != "" {
		t.Errorf("second Finish: %+v", r)
	}
}

// TestMessageAbort: Abort returns at once, even with lookups hanging, and
// leaves no goroutine behind.
func TestMessageAbort(t *testing.T) {
	srv, res := newZone(t, txtRecord("slow.test", "v=spf1 -all"), txtRecord("k._domainkey.slow.test", "v=DKIM1; p=AAAA"))
	srv.SetDelay("slow.test", 300*time.Millisecond)
	srv.SetDelay("k._domainkey.slow.test", 300*time.Millisecond)
	before := runtime.NumGoroutine()
	for range 10 {
		m := NewMessage(Config{Resolver: res}, netip.MustParseAddr("192.0.2.1"), "h.test", "u@slow.test")
		hs, _ := splitMessage("DKIM-Signature: v=1; a=rsa-sha256; d=slow.test; s=k; h=From; bh=AAAA; b=AAAA\nFrom: a@slow.test\n\n")
		m.Headers(hs)
		start := time.Now()
		m.Abort()
		m.Write([]byte("after abort\r\n"))
		if time.Since(start) > 100*time.Millisecond {
			t.Fatalf("Abort took %v", time.Since(start))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines, %d before", n, before)
	}
}
