package resolver

import (
	"reflect"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// FuzzResolverAnswer feeds DNS responses, as bytes off the wire, through
// the classification every lookup relies on. Properties: the status is one
// of the three; NXDOMAIN exactly when the rcode says so; Found exactly
// when records of the asked type are kept, and every kept record is of
// that type in the concrete Go type the typed lookups assert (a mismatch
// would panic in PTR, MX or TXT); the cache lifetime is within the
// configured bounds and never longer than a kept record's TTL.
func FuzzResolverAnswer(f *testing.F) {
	seed := func(qtype uint16, rcode int, answers, ns []string) {
		m := new(mdns.Msg)
		m.SetQuestion("example.test.", qtype)
		m.Response, m.Rcode = true, rcode
		for _, s := range answers {
			m.Answer = append(m.Answer, mustRR(f, s))
		}
		for _, s := range ns {
			m.Ns = append(m.Ns, mustRR(f, s))
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, qtype)
	}
	soa := "test. 3600 IN SOA ns.test. host.test. 1 7200 900 1209600 300"
	seed(mdns.TypeA, mdns.RcodeSuccess, []string{"example.test. 300 IN A 192.0.2.1", "example.test. 60 IN A 192.0.2.2"}, nil)
	seed(mdns.TypeA, mdns.RcodeSuccess, []string{"example.test. 300 IN CNAME x.test.", "x.test. 30 IN A 192.0.2.1"}, nil)
	seed(mdns.TypeTXT, mdns.RcodeSuccess, []string{`example.test. 300 IN TXT "v=spf1 " "-all"`}, nil)
	seed(mdns.TypeMX, mdns.RcodeSuccess, []string{"example.test. 300 IN MX 0 ."}, nil)
	seed(mdns.TypePTR, mdns.RcodeSuccess, []string{"example.test. 300 IN PTR mail.example.test."}, nil)
	seed(mdns.TypeAAAA, mdns.RcodeSuccess, nil, []string{soa})
	seed(mdns.TypeA, mdns.RcodeNameError, nil, []string{soa})
	seed(mdns.TypeA, mdns.RcodeNameError, []string{"example.test. 300 IN A 192.0.2.1"}, nil)
	seed(mdns.TypeTXT, mdns.RcodeSuccess, []string{"example.test. 300 IN A 192.0.2.1"}, nil)

	r, err := New(Config{Servers: []string{"127.0.0.1:53"}, MaxTTL: time.Hour, NegativeTTL: 5 * time.Minute})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, wire []byte, qtype uint16) {
		resp := new(mdns.Msg)
		if resp.Unpack(wire) != nil || resp.Rcode != mdns.RcodeSuccess && resp.Rcode != mdns.RcodeNameError {
			return // exchange turns these into temporary errors before classifying
		}
		a := r.answer("example.test.", qtype, resp)
		switch a.Status {
		case Found, NXDomain, NoData:
		default:
			t.Fatalf("status %v", a.Status)
		}
		if (a.Status == NXDomain) != (resp.Rcode == mdns.RcodeNameError) {
			t.Fatalf("status %v for rcode %d", a.Status, resp.Rcode)
		}
		if a.Status != NXDomain && (a.Status == Found) != (len(a.RRs) > 0) {
			t.Fatalf("status %v with %d records", a.Status, len(a.RRs))
		}
		want := mdns.TypeToRR[qtype]
		for _, rr := range a.RRs {
			if rr.Header().Rrtype != qtype {
				t.Fatalf("kept a %s record for a %s query", mdns.TypeToString[rr.Header().Rrtype], mdns.TypeToString[qtype])
			}
			if want != nil && reflect.TypeOf(rr) != reflect.TypeOf(want()) {
				t.Fatalf("a %s record of Go type %T", mdns.TypeToString[qtype], rr)
			}
			if a.Status == Found && a.TTL > time.Duration(rr.Header().Ttl)*time.Second {
				t.Fatalf("kept %v, a record says %ds", a.TTL, rr.Header().Ttl)
			}
		}
		bound := r.negTTL
		if a.Status == Found {
			bound = r.maxTTL
		}
		if a.TTL < 0 || a.TTL > bound {
			t.Fatalf("%v answer kept %v (bound %v)", a.Status, a.TTL, bound)
		}
	})
}

func mustRR(t testing.TB, s string) mdns.RR {
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}
