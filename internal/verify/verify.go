// Package verify authenticates inbound mail: DKIM (RFC 6376) while the
// message streams, SPF (RFC 7208) for the MAIL FROM or HELO identity, DMARC
// (RFC 7489) over both, and the Authentication-Results header (RFC 8601)
// that reports them.
//
// Every mechanism returns an RFC 8601 status and the evidence behind it.
// Nothing here knows the configuration or the milter: policy.DecideMessage
// turns Results into an action, the milter package feeds Message and adds
// the header.
//
// DNS goes through the shared resolver. go-msgauth and blitiri spf tell
// temporary from permanent DNS errors with type assertions on a bare
// *net.DNSError, so their lookups go through resolver.NetResolver; a
// wrapped error would turn a timeout into a permanent failure.
package verify

import (
	"net/netip"
	"strings"
)

// Status is an RFC 8601 §2.7 result value.
type Status string

const (
	None      Status = "none"
	Pass      Status = "pass"
	Fail      Status = "fail"
	SoftFail  Status = "softfail" // SPF only
	Neutral   Status = "neutral"
	Policy    Status = "policy" // DKIM: verified, but not acceptable here (RSA < 1024 bits, sha1, l=)
	TempError Status = "temperror"
	PermError Status = "permerror"
)

// Results are the outcomes for one message, as DecideMessage and
// FormatAuthResults take them.
type Results struct {
	// DKIM has one entry per verified signature, in header order (the
	// newest signature first). Empty: the message carries no signature.
	DKIM []DKIMResult
	// DKIMSkipped counts the signatures beyond the verification limit:
	// they are neither verified nor reported.
	DKIMSkipped int
	SPF         SPFResult   // Status "" when SPF was not checked
	DMARC       DMARCResult // Status "" when DMARC was not checked
}

// DKIMStatus is the message's DKIM result as a whole, the way OpenDKIM
// acts on it: pass if any signature passes; otherwise fail if any
// signature is bad (On-BadSignature); otherwise temperror if a key could
// not be fetched; otherwise permerror or policy (no key, revoked, weak
// key); none without signatures.
func (r Results) DKIMStatus() Status {
	best := None
	rank := map[Status]int{None: 0, Neutral: 1, Policy: 2, PermError: 3, TempError: 4, Fail: 5, Pass: 6}
	for _, d := range r.DKIM {
		if rank[d.Status] > rank[best] {
			best = d.Status
		}
	}
	return best
}

// IPRev is the screen's iprev result (RFC 8601 §3) for the client.
type IPRev struct {
	Result Status // pass, fail, temperror, permerror; "" if not checked
	IP     netip.Addr
}

// domainOf returns the lower-case domain of an address, without a
// trailing dot ("" if there is no @).
func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return normDomain(addr[at+1:])
}

func normDomain(d string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
}
