package resolver

import (
	"context"
	"net"
	"net/netip"
)

// NetResolver adapts a Resolver to the interface of *net.Resolver that
// blitiri.com.ar/go/spf (DNSResolver) and go-msgauth expect.
//
// Every error is a bare *net.DNSError, never wrapped: both libraries
// classify with a type assertion (err.(*net.DNSError), err.(net.Error)),
// and a wrapped timeout turns into a permanent error there. IsNotFound is
// set for a clean NXDOMAIN or NODATA (and for names that cannot exist),
// IsTemporary (and IsTimeout for timeouts) for everything else.
type NetResolver struct {
	r *Resolver
}

// Net returns the resolver as a NetResolver.
func (r *Resolver) Net() NetResolver { return NetResolver{r} }

// LookupTXT returns one string per TXT record, its character-strings
// joined, as net.Resolver.LookupTXT does.
func (n NetResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, st, err := n.r.TXT(ctx, name)
	if e := netError(name, st, err); e != nil {
		return nil, e
	}
	return txts, nil
}

// LookupMX returns the MX records sorted by preference. A null MX (RFC
// 7505) comes back as one record with Host ".".
func (n NetResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, st, err := n.r.MXs(ctx, name)
	if e := netError(name, st, err); e != nil {
		return nil, e
	}
	out := make([]*net.MX, len(mxs))
	for i, mx := range mxs {
		out[i] = &net.MX{Host: mx.Host, Pref: mx.Pref}
	}
	return out, nil
}

// LookupIPAddr returns the A and AAAA addresses of host. When one family
// fails temporarily and the other has addresses, the addresses are
// returned (as net.Resolver does).
func (n NetResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	addrs, st, err := n.r.Addrs(ctx, host, true, true)
	if e := netError(host, st, err); e != nil {
		return nil, e
	}
	out := make([]net.IPAddr, len(addrs))
	for i, a := range addrs {
		out[i] = net.IPAddr{IP: net.IP(a.AsSlice())}
	}
	return out, nil
}

// LookupAddr returns the PTR names of addr (absolute, lower case).
func (n NetResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, perr := netip.ParseAddr(addr)
	if perr != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	names, st, err := n.r.PTR(ctx, ip)
	if e := netError(addr, st, err); e != nil {
		return nil, e
	}
	return names, nil
}

// netError is NetError, except that an error that is not a DNS failure (a
// name that is not a valid domain name, which the resolver refuses to
// send) means the name cannot exist: IsNotFound, as net.Resolver reports
// it. NetError would call it temporary, and a malformed name in an SPF
// record or a DKIM signature would defer mail forever.
func netError(name string, st Status, err error) error {
	if err != nil && !IsTemporary(err) {
		return &net.DNSError{Err: err.Error(), Name: name, IsNotFound: true}
	}
	return NetError(name, st, err)
}
