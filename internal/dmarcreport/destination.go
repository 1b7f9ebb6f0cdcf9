package dmarcreport

import (
	"context"
	"strings"

	"vouch/internal/resolver"
	"vouch/internal/verify"
)

// TXTResolver is the DNS lookup the external-destination check needs;
// *resolver.Resolver is one.
type TXTResolver interface {
	TXT(ctx context.Context, name string) ([]string, resolver.Status, error)
}

// DestinationAllowed is the external-destination check (RFC 7489 §7.1):
// reports about policyDomain may go to an address at ruaDomain when both
// have the same organizational domain, or when ruaDomain publishes a
// DMARC record at <policyDomain>._report._dmarc.<ruaDomain> that says it
// wants them. Without that record (NXDOMAIN, no TXT, no v=DMARC1) the
// answer is false and the URI is dropped; a temporary DNS failure is
// returned as err (resolver.IsTemporary), and the report waits for a
// retry: it is neither sent nor dropped on a guess.
//
// The §7.1 override (a rua= in that record replacing the address) is not
// applied: the address the domain owner published is used as is.
func DestinationAllowed(ctx context.Context, res TXTResolver, policyDomain, ruaDomain string) (bool, error) {
	policyDomain = strings.ToLower(strings.TrimSuffix(policyDomain, "."))
	ruaDomain = strings.ToLower(strings.TrimSuffix(ruaDomain, "."))
	if verify.OrgDomain(policyDomain) == verify.OrgDomain(ruaDomain) {
		return true, nil
	}
	txts, _, err := res.TXT(ctx, policyDomain+"._report._dmarc."+ruaDomain)
	if err != nil {
		if resolver.IsTemporary(err) {
			return false, err
		}
		return false, nil // a name DNS cannot hold (too long): no record
	}
	for _, t := range txts {
		if isDMARC1(t) {
			return true, nil
		}
	}
	return false, nil
}

// isDMARC1 says a TXT record starts with the v=DMARC1 tag (RFC 7489
// §7.1: "v=DMARC1" is the minimum a destination publishes).
func isDMARC1(t string) bool {
	first, _, _ := strings.Cut(t, ";")
	name, value, ok := strings.Cut(first, "=")
	return ok && strings.TrimSpace(name) == "v" && strings.TrimSpace(value) == "DMARC1"
}
