// Package netset finds the most specific network that holds an address,
// with one map lookup per prefix length in use instead of a scan of every
// entry: internal hosts and the whitelist files both match clients this
// way.
package netset

import (
	"net/netip"
	"slices"
)

// Prefixes maps networks to values. The zero value is empty and ready.
type Prefixes[V any] struct {
	byLen map[int]map[netip.Prefix]V // key: bits, +1000 for IPv6
	lens  []int                      // keys in use, most specific first
}

func key(p netip.Prefix) int {
	if p.Addr().Is6() {
		return p.Bits() + 1000
	}
	return p.Bits()
}

// Get returns the value stored for exactly p (masked, IPv4 unmapped).
func (s *Prefixes[V]) Get(p netip.Prefix) (V, bool) {
	p = normalize(p)
	v, ok := s.byLen[key(p)][p]
	return v, ok
}

// Set stores v for p (masked, IPv4 unmapped).
func (s *Prefixes[V]) Set(p netip.Prefix, v V) {
	p = normalize(p)
	if s.byLen == nil {
		s.byLen = map[int]map[netip.Prefix]V{}
	}
	k := key(p)
	m := s.byLen[k]
	if m == nil {
		m = map[netip.Prefix]V{}
		s.byLen[k] = m
		s.lens = append(s.lens, k)
		slices.SortFunc(s.lens, func(a, b int) int { return b%1000 - a%1000 })
	}
	m[p] = v
}

// Lookup returns the value of the most specific network holding ip.
func (s *Prefixes[V]) Lookup(ip netip.Addr) (V, netip.Prefix, bool) {
	var zero V
	if !ip.IsValid() {
		return zero, netip.Prefix{}, false
	}
	ip = ip.Unmap()
	for _, k := range s.lens {
		if (k >= 1000) != ip.Is6() {
			continue
		}
		p, err := ip.Prefix(k % 1000)
		if err != nil {
			continue
		}
		if v, ok := s.byLen[k][p]; ok {
			return v, p, true
		}
	}
	return zero, netip.Prefix{}, false
}

// Len is the number of networks.
func (s *Prefixes[V]) Len() int {
	n := 0
	for _, m := range s.byLen {
		n += len(m)
	}
	return n
}

// normalize masks the host bits and turns an IPv4-mapped IPv6 network of
// at least /96 into the IPv4 network (a shorter one stays IPv6: it is not
// an IPv4 network).
func normalize(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}
