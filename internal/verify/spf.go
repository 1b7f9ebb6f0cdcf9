package verify

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"

	"vouch/internal/mailtext"
	"vouch/internal/resolver"
)

// SPFResult is the SPF outcome for the client (RFC 7208).
type SPFResult struct {
	Status   Status // none, neutral, pass, fail, softfail, temperror, permerror; "" if not checked
	Identity string // "mailfrom", or "helo" for the null sender (RFC 7208 §2.4)
	Domain   string // the domain whose record was evaluated (DMARC aligns on it)
	Sender   string // the MAIL FROM address as given ("" for the null sender)
	HELO     string
	Reason   string // what decided it, or why it is an error
}

// CheckSPF evaluates SPF for a client at MAIL FROM: the MAIL FROM
// identity, or for the null sender (and a sender without a domain) the
// HELO identity as postmaster@HELO (RFC 7208 §2.4), so that %{s} and %{l}
// expand as the RFC says. A domain that is not a valid multi-label name
// (an address literal HELO, say) gives none (RFC 7208 §4.3). ctx bounds
// the whole evaluation: when it ends, the result is temperror.
func CheckSPF(ctx context.Context, res *resolver.Resolver, ip netip.Addr, helo, mailFrom string) SPFResult {
	mailFrom = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(mailFrom), "<"), ">")
	helo = strings.TrimSpace(helo)
	r := SPFResult{Identity: "mailfrom", Sender: mailFrom, HELO: helo}
	r.Domain = domainOf(mailFrom)
	local := mailFrom[:max(strings.LastIndexByte(mailFrom, '@'), 0)]
	if local == "" {
		local = "postmaster" // RFC 7208 §4.3: an empty local-part
	}
	sender := local + "@" + r.Domain
	if r.Domain == "" {
		r.Identity = "helo"
		r.Domain = normDomain(helo)
		sender = "postmaster@" + r.Domain
	}
	if !mailtext.ValidDomain(r.Domain) {
		r.Status = None
		r.Reason = "no valid domain to check"
		if r.Domain == "" {
			r.Reason = "no domain to check"
		}
		return r
	}
	if !ip.IsValid() {
		r.Status, r.Reason = PermError, "no client address"
		return r
	}
	result, err := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, sender,
		spf.WithResolver(res.Net()), spf.WithContext(ctx))
	r.Status = Status(result)
	r.Reason = spfReason(result, err)
	return r
}

// spfReason turns the library's informational error into a short reason.
// On a match it says which mechanism matched; on none and errors, why.
func spfReason(result spf.Result, err error) string {
	if err == nil {
		if result == spf.Neutral {
			return "no mechanism matched"
		}
		return ""
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		switch {
		case de.IsTimeout:
			return "DNS timeout looking up " + strings.TrimSuffix(de.Name, ".")
		case de.IsNotFound:
			return "no such domain " + strings.TrimSuffix(de.Name, ".")
		}
		return "DNS failure looking up " + strings.TrimSuffix(de.Name, ".")
	}
	switch {
	case errors.Is(err, spf.ErrNoResult):
		return "no SPF record"
	case errors.Is(err, spf.ErrMatchedAll):
		return "matched all"
	}
	return err.Error()
}
