package resolver

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"blitiri.com.ar/go/spf"

	"vouch/internal/dnstest"
)

// NetResolver must satisfy blitiri spf's resolver interface.
var _ spf.DNSResolver = NetResolver{}

// TestNetResolverErrors checks every lookup's error kinds: the libraries
// assert err.(*net.DNSError) directly, so the error must be that type,
// unwrapped, with the right flags.
func TestNetResolverErrors(t *testing.T) {
	srv := dnstest.New(t,
		"a.test. 300 IN A 192.0.2.1",
		"a.test. 300 IN AAAA 2001:db8::1",
		"a.test. 300 IN TXT \"v=spf1\" \" -all\"",
		"a.test. 300 IN TXT \"second\"",
		"a.test. 300 IN MX 20 mx2.a.test.",
		"a.test. 300 IN MX 10 mx1.a.test.",
		"null.test. 300 IN MX 0 .",
		"1.2.0.192.in-addr.arpa. 300 IN PTR a.test.",
		"servfail.test. 300 IN A 192.0.2.3",
		"drop.test. 300 IN A 192.0.2.3",
	)
	srv.SetFault("servfail.test", dnstest.ServFail)
	srv.SetFault("drop.test", dnstest.Drop)
	srv.SetFault("3.2.0.192.in-addr.arpa", dnstest.ServFail)
	r, err := New(Config{Servers: []string{srv.Addr}, Timeout: 100 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	n := r.Net()
	ctx := context.Background()

	type kind int
	const (
		ok kind = iota
		notFound
		temporary
		timeout
	)
	check := func(t *testing.T, err error, want kind) {
		t.Helper()
		if want == ok {
			if err != nil {
				t.Fatalf("error %v", err)
			}
			return
		}
		de, isDNS := err.(*net.DNSError) // exactly what spf and go-msgauth do
		if !isDNS {
			t.Fatalf("error %T %v, want a bare *net.DNSError", err, err)
		}
		got := ok
		switch {
		case de.IsNotFound:
			got = notFound
		case de.IsTimeout:
			got = timeout
		case de.IsTemporary:
			got = temporary
		}
		if got != want {
			t.Fatalf("error %+v: kind %d, want %d", de, got, want)
		}
		// go-msgauth's classification: net.Error.Temporary().
		if (want == temporary || want == timeout) != de.Temporary() {
			t.Fatalf("Temporary() = %v for %+v", de.Temporary(), de)
		}
	}

	t.Run("TXT", func(t *testing.T) {
		txts, err := n.LookupTXT(ctx, "a.test")
		check(t, err, ok)
		slices.Sort(txts)
		if !slices.Equal(txts, []string{"second", "v=spf1 -all"}) {
			t.Errorf("TXT %q", txts)
		}
		_, err = n.LookupTXT(ctx, "nx.test")
		check(t, err, notFound)
		_, err = n.LookupTXT(ctx, "null.test") // NODATA
		check(t, err, notFound)
		_, err = n.LookupTXT(ctx, "servfail.test")
		check(t, err, temporary)
		_, err = n.LookupTXT(ctx, "drop.test")
		check(t, err, timeout)
		_, err = n.LookupTXT(ctx, "bad..name.test")
		check(t, err, notFound)
	})
	t.Run("MX", func(t *testing.T) {
		mxs, err := n.LookupMX(ctx, "a.test")
		check(t, err, ok)
		if len(mxs) != 2 || mxs[0].Host != "mx1.a.test." || mxs[0].Pref != 10 || mxs[1].Host != "mx2.a.test." {
			t.Errorf("MX %+v %+v", mxs[0], mxs[1])
		}
		mxs, err = n.LookupMX(ctx, "null.test")
		check(t, err, ok)
		if len(mxs) != 1 || mxs[0].Host != "." {
			t.Errorf("null MX %+v", mxs)
		}
		_, err = n.LookupMX(ctx, "nx.test")
		check(t, err, notFound)
		_, err = n.LookupMX(ctx, "servfail.test")
		check(t, err, temporary)
	})
	t.Run("IPAddr", func(t *testing.T) {
		addrs, err := n.LookupIPAddr(ctx, "a.test")
		check(t, err, ok)
		var got []string
		for _, a := range addrs {
			got = append(got, a.IP.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"192.0.2.1", "2001:db8::1"}) {
			t.Errorf("addrs %v", got)
		}
		if len(addrs[0].IP) != net.IPv4len && len(addrs[0].IP) != net.IPv6len {
			t.Errorf("IP length %d", len(addrs[0].IP))
		}
		_, err = n.LookupIPAddr(ctx, "nx.test")
		check(t, err, notFound)
		_, err = n.LookupIPAddr(ctx, "servfail.test")
		check(t, err, temporary)
		_, err = n.LookupIPAddr(ctx, "drop.test")
		check(t, err, timeout)
	})
	t.Run("Addr", func(t *testing.T) {
		names, err := n.LookupAddr(ctx, "192.0.2.1")
		check(t, err, ok)
		if !slices.Equal(names, []string{"a.test."}) {
			t.Errorf("PTR %v", names)
		}
		_, err = n.LookupAddr(ctx, "192.0.2.2")
		check(t, err, notFound)
		_, err = n.LookupAddr(ctx, "192.0.2.3")
		check(t, err, temporary)
		_, err = n.LookupAddr(ctx, "not an address")
		if _, isDNS := err.(*net.DNSError); !isDNS {
			t.Errorf("bad address: %T %v", err, err)
		}
	})
	t.Run("Deadline", func(t *testing.T) {
		dctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := n.LookupTXT(dctx, "drop.test")
		check(t, err, timeout)
	})
}

// TestNetResolverSPF runs blitiri spf over the adapter: each result the
// library derives from DNS errors must come out as RFC 7208 says.
func TestNetResolverSPF(t *testing.T) {
	srv := dnstest.New(t,
		"pass.test. 300 IN TXT \"v=spf1 ip4:192.0.2.1 -all\"",
		"mx.test. 300 IN TXT \"v=spf1 mx -all\"",
		"mx.test. 300 IN MX 10 mail.mx.test.",
		"mail.mx.test. 300 IN A 192.0.2.1",
		"inc.test. 300 IN TXT \"v=spf1 include:broken.test -all\"",
		"broken.test. 300 IN TXT \"v=spf1 -all\"",
		"slow.test. 300 IN TXT \"v=spf1 -all\"",
	)
	srv.SetFault("broken.test", dnstest.ServFail)
	srv.SetFault("slow.test", dnstest.Drop)
	r, err := New(Config{Servers: []string{srv.Addr}, Timeout: 100 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP("192.0.2.1")
	for _, tc := range []struct {
		domain string
		ip     string
		want   spf.Result
	}{
		{"pass.test", "192.0.2.1", spf.Pass},
		{"pass.test", "192.0.2.2", spf.Fail},
		{"mx.test", "192.0.2.1", spf.Pass},
		{"nx.test", "192.0.2.1", spf.None},
		{"inc.test", "192.0.2.1", spf.TempError},
		{"slow.test", "192.0.2.1", spf.TempError},
	} {
		ip = net.ParseIP(tc.ip)
		got, err := spf.CheckHostWithSender(ip, "helo.test", "user@"+tc.domain, spf.WithResolver(r.Net()), spf.WithContext(context.Background()))
		if got != tc.want {
			t.Errorf("%s from %s: %s (%v), want %s", tc.domain, tc.ip, got, err, tc.want)
		}
	}
}
