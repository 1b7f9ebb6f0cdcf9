package policy

import (
	"net/netip"

	"vouch/internal/verify"
	"vouch/whitelist"
)

// Allowlisted reports the [verify] allow-list entry that exempts a message
// from enforcement. IP entries match the client. Name and address entries
// match only what authenticated: a passing DKIM signature's d=, or the
// domain (and address) that passed SPF. The From header alone is never
// enough, since anyone can write it; that is what DMARC is for.
func Allowlisted(list *whitelist.List, ip netip.Addr, r verify.Results) (whitelist.Entry, bool) {
	if list.Len() == 0 {
		return whitelist.Entry{}, false
	}
	if e, ok := list.MatchIP(ip); ok {
		return e, true
	}
	for _, d := range r.DKIM {
		if d.Status == verify.Pass {
			if e, ok := list.MatchHost(d.Domain); ok {
				return e, true
			}
		}
	}
	if r.SPF.Status == verify.Pass {
		if r.SPF.Sender != "" {
			if e, ok := list.MatchAddress(r.SPF.Sender); ok {
				return e, true
			}
		}
		if e, ok := list.MatchHost(r.SPF.Domain); ok {
			return e, true
		}
	}
	return whitelist.Entry{}, false
}
