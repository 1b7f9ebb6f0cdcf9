package policy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"vouch/internal/iprev"
	"vouch/internal/mailtext"
	"vouch/internal/resolver"
)

// The checks below gather facts and never decide: each returns the
// outcomes that hold, the outcomes a DNS failure left open, and the DNS
// answers used, for the log line and `vouch explain`.

// maxMXHosts bounds the MX hosts whose addresses a check resolves.
const maxMXHosts = 10

// checkPTR is forward-confirmed reverse DNS (internal/iprev): some PTR
// name of ip must resolve back to ip. Its iprev status goes into
// Authentication-Results as it is.
func checkPTR(ctx context.Context, res *resolver.Resolver, ip netip.Addr, maxNames int) Result {
	r := Result{Check: PTR}
	var err error
	r.IPRev, _, r.PTRNames, r.Evidence, err = iprev.Lookup(ctx, res, ip, maxNames)
	switch r.IPRev {
	case iprev.PermError:
		r.Outcomes = []Outcome{NoRecord}
	case iprev.Fail:
		r.Outcomes = []Outcome{NoMatch}
	case iprev.TempError:
		r.TempErr = err
		r.Undetermined = []Outcome{NoMatch}
		if r.PTRNames == nil {
			// The PTR lookup itself failed: there may be no record.
			r.Undetermined = []Outcome{NoRecord, NoMatch}
		}
	}
	return r
}

// checkHELO checks the HELO/EHLO argument: an address literal must be the
// client's own address; a name must be a syntactically valid FQDN that
// exists and has the client's address among its own or its MX hosts'
// addresses.
func checkHELO(ctx context.Context, res *resolver.Resolver, ip netip.Addr, helo string) Result {
	r := Result{Check: HELO}
	if lit, ok := addressLiteral(helo); ok {
		if lit == ip.Unmap() {
			r.note("HELO %s is the client's address literal", helo)
		} else {
			r.note("HELO %s is an address literal, the client is %s", helo, ip)
			r.Outcomes = []Outcome{Invalid}
		}
		return r
	}
	name := strings.TrimSuffix(strings.ToLower(helo), ".")
	if !mailtext.ValidDomain(name) {
		r.note("HELO %q is not a fully qualified domain name", mailtext.Printable(helo))
		r.Outcomes = []Outcome{Invalid}
		return r
	}
	r.hostMatch(ctx, res, name, ip, false)
	return r
}

// checkSender checks the domain of the MAIL FROM address.
func checkSender(ctx context.Context, res *resolver.Resolver, ip netip.Addr, sender string) Result {
	r := Result{Check: Mail}
	at := strings.LastIndexByte(sender, '@')
	if sender == "" || at < 0 {
		// The null sender (bounces) has no domain to check; a bare local
		// part is the MTA's problem (Postfix appends $myorigin).
		r.Skipped = true
		return r
	}
	domain := strings.TrimSuffix(strings.ToLower(sender[at+1:]), ".")
	if _, ok := addressLiteral(domain); ok {
		r.note("sender domain %s is an address literal", domain)
		return r
	}
	if !mailtext.ValidDomain(domain) {
		r.note("sender domain %q is not a valid domain name", mailtext.Printable(domain))
		r.Outcomes = []Outcome{NotFound}
		return r
	}
	r.hostMatch(ctx, res, domain, ip, true)
	return r
}

// hostMatch is the lookup HELO and MAIL share: does name exist (A, AAAA or
// MX), does it have an MX, is it a null MX, and is ip one of its addresses
// or an address of one of its MX hosts.
func (r *Result) hostMatch(ctx context.Context, res *resolver.Resolver, name string, ip netip.Addr, isSender bool) {
	type addrAnswer struct {
		addrs []netip.Addr
		st    resolver.Status
		err   error
	}
	var a addrAnswer
	var mxs []resolver.MX
	var mxSt resolver.Status
	var mxErr error
	// Both families: existence counts either, the match needs ip's.
	lookAddrs := func() { a.addrs, a.st, a.err = res.Addrs(ctx, name, true, true) }
	lookMX := func() { mxs, mxSt, mxErr = res.MXs(ctx, name) }
	if res.HostCached(name) {
		// Answers from the cache: goroutines would cost more than they
		// overlap.
		lookAddrs()
		lookMX()
	} else {
		var wg sync.WaitGroup
		wg.Go(lookAddrs)
		wg.Go(lookMX)
		wg.Wait()
	}
	r.noteAddrs(name, a.addrs, a.st, a.err)
	// Concatenated, not r.note: this line is built for every HELO and
	// MAIL check (see iprev.AddrEvidence).
	if mxErr != nil {
		r.Evidence = append(r.Evidence, "MX "+name+": "+mxErr.Error())
	} else if mxSt != resolver.Found {
		r.Evidence = append(r.Evidence, "MX "+name+": "+mxSt.String())
	} else {
		hosts := make([]string, len(mxs))
		for i, mx := range mxs {
			hosts[i] = strconv.Itoa(int(mx.Pref)) + " " + mx.Host
		}
		r.Evidence = append(r.Evidence, "MX "+name+": "+strings.Join(hosts, ", "))
	}

	var hosts []string
	for _, mx := range mxs {
		if mx.Host != "." {
			hosts = append(hosts, mx.Host)
		}
	}
	switch {
	case a.st == resolver.NXDomain || mxErr == nil && mxSt == resolver.NXDomain,
		a.err == nil && len(a.addrs) == 0 && mxErr == nil && len(hosts) == 0 && !isNullMX(mxs):
		r.Outcomes = []Outcome{NotFound}
		return
	case isSender && isNullMX(mxs):
		// RFC 7505 §3: the domain declares it sends and receives no mail.
		r.Outcomes = []Outcome{NullMX}
		return
	case len(a.addrs) == 0 && len(hosts) == 0:
		// Neither an address nor an MX host, and a lookup failed: every
		// outcome is still open.
		r.Undetermined, r.TempErr = []Outcome{NotFound, Forged}, firstErr(a.err, mxErr)
		if isSender {
			r.Undetermined = []Outcome{NotFound, NoMX, NullMX, Forged}
		}
		return
	}
	if isSender {
		if mxErr != nil {
			// The MX answer would have told whether there is an MX and
			// whether it is a null MX (RFC 7505): both stay open, so a
			// null_mx = reject defers instead of accepting.
			r.Undetermined, r.TempErr = append(r.Undetermined, NoMX, NullMX), mxErr
		} else if len(hosts) == 0 {
			r.Outcomes = append(r.Outcomes, NoMX)
		}
	}
	if slices.Contains(a.addrs, ip.Unmap()) {
		return // the name itself points at the client
	}
	if len(hosts) > maxMXHosts {
		hosts = hosts[:maxMXHosts]
	}
	match, tempErr := anyResolvesTo(ctx, res, hosts, ip, r)
	switch {
	case match != "":
	case tempErr != nil || a.err != nil || mxErr != nil:
		r.Undetermined = append(r.Undetermined, Forged)
		if r.TempErr == nil {
			r.TempErr = firstErr(tempErr, a.err, mxErr)
		}
	default:
		r.Outcomes = append(r.Outcomes, Forged)
	}
}

// isNullMX: a single MX RR whose host is the root (RFC 7505 §3).
func isNullMX(mxs []resolver.MX) bool {
	return len(mxs) == 1 && mxs[0].Host == "."
}

// anyResolvesTo is iprev.ResolvesTo with its evidence noted in r.
func anyResolvesTo(ctx context.Context, res *resolver.Resolver, names []string, ip netip.Addr, r *Result) (string, error) {
	match, evidence, err := iprev.ResolvesTo(ctx, res, names, ip)
	r.Evidence = append(r.Evidence, evidence...)
	return match, err
}

func (r *Result) note(format string, args ...any) {
	r.Evidence = append(r.Evidence, fmt.Sprintf(format, args...))
}

func (r *Result) noteAddrs(name string, addrs []netip.Addr, st resolver.Status, err error) {
	r.Evidence = append(r.Evidence, iprev.AddrEvidence(name, addrs, st, err))
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// addressLiteral parses an RFC 5321 §4.1.3 address literal: [192.0.2.1]
// or [IPv6:2001:db8::1].
func addressLiteral(s string) (netip.Addr, bool) {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return netip.Addr{}, false
	}
	inner := s[1 : len(s)-1]
	if v6, ok := strings.CutPrefix(inner, "IPv6:"); ok {
		a, err := netip.ParseAddr(v6)
		return a.Unmap(), err == nil && a.Is6() && a.Zone() == ""
	}
	a, err := netip.ParseAddr(inner)
	return a, err == nil && a.Is4()
}
