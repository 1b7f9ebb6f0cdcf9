package resolver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"

	mdns "github.com/miekg/dns"
)

func typeName(t uint16) string { return mdns.TypeToString[t] }

// MX is one mail exchanger. Host is absolute and lower case ("." for a null MX).
type MX struct {
	Pref uint16
	Host string
}

// PTR returns the names the reverse zone gives for ip.
func (r *Resolver) PTR(ctx context.Context, ip netip.Addr) ([]string, Status, error) {
	arpa, err := mdns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, NXDomain, err
	}
	a, err := r.Query(ctx, arpa, mdns.TypePTR)
	if err != nil {
		return nil, 0, err
	}
	names := make([]string, 0, len(a.RRs))
	for _, rr := range a.RRs {
		names = append(names, strings.ToLower(rr.(*mdns.PTR).Ptr))
	}
	return names, a.Status, nil
}

// Addrs returns the A (and/or AAAA) addresses of name. With both families
// the two queries run in parallel; the status is Found if either has
// records, NXDomain if either says the name does not exist, else NoData. A
// temporary failure of either query is returned as the error unless the
// other one found addresses.
func (r *Resolver) Addrs(ctx context.Context, name string, v4, v6 bool) ([]netip.Addr, Status, error) {
	var qtypes []uint16
	if v4 {
		qtypes = append(qtypes, mdns.TypeA)
	}
	if v6 {
		qtypes = append(qtypes, mdns.TypeAAAA)
	}
	answers := make([]*Answer, len(qtypes))
	errs := make([]error, len(qtypes))
	if len(qtypes) == 1 || r.cached(name, qtypes...) {
		// Nothing to overlap (one family, as iprev asks, or answers from
		// the cache): a goroutine would cost more than the lookup.
		for i, qt := range qtypes {
			answers[i], errs[i] = r.Query(ctx, name, qt)
		}
	} else {
		var wg sync.WaitGroup
		for i, qt := range qtypes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i], errs[i] = r.Query(ctx, name, qt)
			}()
		}
		wg.Wait()
	}

	var addrs []netip.Addr
	status := NoData
	var firstErr error
	for i, a := range answers {
		if errs[i] != nil {
			if firstErr == nil {
				firstErr = errs[i]
			}
			continue
		}
		if a.Status == NXDomain {
			status = NXDomain
		}
		for _, rr := range a.RRs {
			switch rr := rr.(type) {
			case *mdns.A:
				if ip, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					addrs = append(addrs, ip)
				}
			case *mdns.AAAA:
				if ip, ok := netip.AddrFromSlice(rr.AAAA); ok {
					addrs = append(addrs, ip.Unmap())
				}
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, Found, nil
	}
	if firstErr != nil {
		return nil, 0, firstErr
	}
	return nil, status, nil
}

// HostCached reports whether the cache holds the A, AAAA and MX answers
// of name now. A caller that would look them up in parallel looks them up
// one after the other then: on a busy MX nearly every answer is cached,
// and goroutines would cost more than the lookups. (An answer that
// expires in between is looked up from the servers: correct, once slower.)
func (r *Resolver) HostCached(name string) bool {
	return r.cached(name, mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX)
}

// PTRCached reports whether the cache holds the PTR answer for ip now
// (see HostCached).
func (r *Resolver) PTRCached(ip netip.Addr) bool {
	arpa, err := mdns.ReverseAddr(ip.Unmap().String())
	return err == nil && r.cached(arpa, mdns.TypePTR)
}

// cached reports whether every qtype of name is answered from the cache.
func (r *Resolver) cached(name string, qtypes ...uint16) bool {
	fqdn := strings.ToLower(mdns.Fqdn(name))
	for _, qt := range qtypes {
		if _, ok := r.cache.Peek(cacheKey{fqdn, qt}); !ok {
			return false
		}
	}
	return true
}

// MXs returns the MX records of name sorted by preference.
func (r *Resolver) MXs(ctx context.Context, name string) ([]MX, Status, error) {
	a, err := r.Query(ctx, name, mdns.TypeMX)
	if err != nil {
		return nil, 0, err
	}
	mxs := make([]MX, 0, len(a.RRs))
	for _, rr := range a.RRs {
		mx := rr.(*mdns.MX)
		mxs = append(mxs, MX{Pref: mx.Preference, Host: strings.ToLower(mx.Mx)})
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	return mxs, a.Status, nil
}

// TXT returns one string per TXT record, its character-strings joined.
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, Status, error) {
	return txtStrings(r.Query(ctx, name, mdns.TypeTXT))
}

// TXTFresh is TXT asked of the servers, never answered from the cache or
// by a lookup in flight: for records that must be current, such as whether
// a new DKIM key is published yet.
func (r *Resolver) TXTFresh(ctx context.Context, name string) ([]string, Status, error) {
	fqdn := strings.ToLower(mdns.Fqdn(name))
	if _, ok := mdns.IsDomainName(fqdn); !ok {
		return nil, 0, fmt.Errorf("dns: invalid name %q", name)
	}
	return txtStrings(r.exchange(ctx, fqdn, mdns.TypeTXT))
}

func txtStrings(a *Answer, err error) ([]string, Status, error) {
	if err != nil {
		return nil, 0, err
	}
	txts := make([]string, 0, len(a.RRs))
	for _, rr := range a.RRs {
		txts = append(txts, strings.Join(rr.(*mdns.TXT).Txt, ""))
	}
	return txts, a.Status, nil
}

// NetError converts a lookup result into the bare *net.DNSError that
// go-msgauth and blitiri spf classify with type assertions: IsNotFound for
// NXDOMAIN/NODATA, IsTemporary/IsTimeout for temporary failures. It
// returns nil for Found.
func NetError(name string, st Status, err error) error {
	if err != nil && !IsTemporary(err) {
		// Not a DNS failure but a name that cannot exist (an invalid d= or
		// SPF macro result): retrying will not help.
		return &net.DNSError{Err: err.Error(), Name: name, IsNotFound: true}
	}
	if err != nil {
		de := &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
		if te, ok := err.(*TempError); ok {
			de.IsTimeout = te.Timeout
		}
		return de
	}
	if st != Found {
		return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return nil
}
