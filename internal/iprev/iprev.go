// Package iprev is forward-confirmed reverse DNS, the "iprev" method of
// RFC 8601 §3: the PTR names of the client's address are looked up, and
// the check passes when one of them (the first maxNames, in the order
// published) has that address among its own. It returns an RFC 8601
// status, the names and the DNS answers it used as evidence, and knows
// nothing of policy: the inbound screen (policy), the
// Authentication-Results header and `vouch check` (internal/domaincheck)
// all judge the same Lookup. As in mox's iprev package, a missing PTR is a
// permerror (asking again will not change it), a PTR whose names do not
// lead back is a fail, and any lookup that ended without a clean answer
// is a temperror, never a fail.
package iprev

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"vouch/internal/resolver"
)

// Status is an RFC 8601 §2.7.3 iprev result.
type Status string

const (
	Pass      Status = "pass"      // a PTR name resolves back to the address
	Fail      Status = "fail"      // PTR names exist, none resolves back
	TempError Status = "temperror" // a lookup failed; try again later
	PermError Status = "permerror" // no PTR record at all
)

// Lookup checks ip (IPv4-mapped addresses are unmapped). It returns the
// status; for pass, the confirmed name (absolute, lower case); every PTR
// name as published; the evidence lines ("PTR 192.0.2.1: mail.example.com.",
// "A/AAAA mail.example.com.: 192.0.2.1"); and for temperror, the failure.
// A temperror with no names is a failed PTR lookup, one with names a
// failed address lookup.
func Lookup(ctx context.Context, res *resolver.Resolver, ip netip.Addr, maxNames int) (status Status, name string, names []string, evidence []string, err error) {
	ip = ip.Unmap()
	names, st, err := res.PTR(ctx, ip)
	switch {
	case err != nil:
		return TempError, "", nil, []string{"PTR " + ip.String() + ": " + err.Error()}, err
	case st != resolver.Found:
		return PermError, "", nil, []string{"PTR " + ip.String() + ": " + st.String()}, nil
	}
	evidence = []string{"PTR " + ip.String() + ": " + strings.Join(names, " ")}
	check := names
	if len(check) > maxNames {
		check = check[:maxNames]
	}
	name, ev, err := ResolvesTo(ctx, res, check, ip)
	evidence = append(evidence, ev...)
	switch {
	case name != "":
		return Pass, name, names, evidence, nil
	case err != nil:
		return TempError, "", names, evidence, err
	}
	return Fail, "", names, evidence, nil
}

// ResolvesTo resolves names in parallel (ip's family only) and returns the
// first, in the given order, that has ip among its addresses, with one
// evidence line per name up to that one. If none does and some lookup
// failed temporarily, it returns that failure: the name it could not see
// might have matched.
func ResolvesTo(ctx context.Context, res *resolver.Resolver, names []string, ip netip.Addr) (string, []string, error) {
	ip = ip.Unmap()
	type answer struct {
		addrs []netip.Addr
		st    resolver.Status
		err   error
	}
	answers := make([]answer, len(names))
	if len(names) == 1 {
		// The usual single PTR name: nothing to overlap, and a goroutine
		// costs more than a cached answer.
		a := &answers[0]
		a.addrs, a.st, a.err = res.Addrs(ctx, names[0], ip.Is4(), ip.Is6())
	} else {
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := &answers[i]
				a.addrs, a.st, a.err = res.Addrs(ctx, name, ip.Is4(), ip.Is6())
			}()
		}
		wg.Wait()
	}
	var evidence []string
	var tempErr error
	for i, a := range answers {
		evidence = append(evidence, AddrEvidence(names[i], a.addrs, a.st, a.err))
		if a.err != nil && tempErr == nil {
			tempErr = a.err
		}
		if slices.Contains(a.addrs, ip) {
			return names[i], evidence, nil
		}
	}
	return "", evidence, tempErr
}

// AddrEvidence is the evidence line of an address lookup.
//
// Evidence lines are built for every screening decision, logged or not:
// they are concatenated, since fmt.Sprintf was about 5 % of the screening
// path's CPU.
func AddrEvidence(name string, addrs []netip.Addr, st resolver.Status, err error) string {
	head := "A/AAAA " + name + ": "
	switch {
	case err != nil:
		return head + err.Error()
	case st != resolver.Found:
		return head + st.String()
	}
	b := make([]byte, 0, len(head)+16*len(addrs))
	b = append(b, head...)
	for i, a := range addrs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = a.AppendTo(b)
	}
	return string(b)
}
