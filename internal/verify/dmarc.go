package verify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"

	"vouch/internal/mailtext"
	"vouch/internal/resolver"
)

// Disposition is a DMARC policy (p=, sp=) and what it asks of a failing
// message once pct= is applied.
type Disposition string

const (
	DispNone       Disposition = "none"
	DispQuarantine Disposition = "quarantine"
	DispReject     Disposition = "reject"
)

// DMARCRecord is a DMARC policy record (RFC 7489 §6.3). Tags with invalid
// values are ignored in favour of their defaults, as §6.3 asks, and listed
// in Warnings.
type DMARCRecord struct {
	Policy          Disposition // p=
	SubdomainPolicy Disposition // sp=; "" when absent: p= applies to subdomains too
	ADKIM           string      // "r" (default) or "s"
	ASPF            string      // "r" (default) or "s"
	Pct             int         // 0-100, default 100
	FO              string      // fo= as written ("" when absent: 0 applies); reports carry it
	RUA, RUF        []string    // report URIs as written
	Warnings        []string
}

// ErrNotDMARC means a TXT record is not a DMARC record (it does not start
// with v=DMARC1); RFC 7489 §6.6.3 discards such records.
var ErrNotDMARC = errors.New("not a DMARC record (does not start with v=DMARC1)")

// ParseDMARC parses a DMARC record. An error means the record cannot be
// used: not a DMARC record (ErrNotDMARC), or no valid p= and no valid
// rua= (§6.6.3 step 6: with a valid rua, a record without a valid p= is
// read as p=none).
func ParseDMARC(txt string) (*DMARCRecord, error) {
	parts := strings.Split(txt, ";")
	k, v, ok := strings.Cut(parts[0], "=")
	// §6.4: v must be the first tag and "DMARC1" exactly.
	if !ok || !strings.EqualFold(strings.TrimSpace(k), "v") || strings.TrimSpace(v) != "DMARC1" {
		return nil, ErrNotDMARC
	}
	rec := &DMARCRecord{ADKIM: "r", ASPF: "r", Pct: 100}
	tags := map[string]string{}
	for _, p := range parts[1:] {
		if strings.TrimSpace(p) == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			rec.Warnings = append(rec.Warnings, fmt.Sprintf("%q is not a tag=value pair, ignored", strings.TrimSpace(p)))
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if _, dup := tags[k]; dup {
			rec.Warnings = append(rec.Warnings, fmt.Sprintf("tag %s repeated, the first one counts", k))
			continue
		}
		tags[k] = strings.TrimSpace(v)
	}
	policy := func(tag string) (Disposition, bool) {
		switch d := Disposition(strings.ToLower(tags[tag])); d {
		case DispNone, DispQuarantine, DispReject:
			return d, true
		}
		return "", false
	}
	if s, ok := tags["rua"]; ok {
		rec.RUA = splitURIs(s)
	}
	if s, ok := tags["ruf"]; ok {
		rec.RUF = splitURIs(s)
	}
	var pOK, spOK bool
	rec.Policy, pOK = policy("p")
	rec.SubdomainPolicy, spOK = policy("sp")
	_, hasSP := tags["sp"]
	if !pOK || hasSP && !spOK {
		if !slices.ContainsFunc(rec.RUA, validReportURI) {
			if !pOK {
				return nil, fmt.Errorf("no valid p= tag (%q)", mailtext.Printable(tags["p"]))
			}
			return nil, fmt.Errorf("invalid sp= tag (%q)", mailtext.Printable(tags["sp"]))
		}
		rec.Warnings = append(rec.Warnings, "no valid p= or sp= tag: read as p=none because rua= is valid (RFC 7489 §6.6.3)")
		rec.Policy, rec.SubdomainPolicy = DispNone, ""
	}
	for _, tag := range []string{"adkim", "aspf"} {
		s, ok := tags[tag]
		if !ok {
			continue
		}
		switch strings.ToLower(s) {
		case "r", "s":
			if tag == "adkim" {
				rec.ADKIM = strings.ToLower(s)
			} else {
				rec.ASPF = strings.ToLower(s)
			}
		default:
			rec.Warnings = append(rec.Warnings, fmt.Sprintf("%s=%s is neither r nor s, r applies", tag, s))
		}
	}
	rec.FO = tags["fo"]
	if s, ok := tags["pct"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 100 {
			rec.Warnings = append(rec.Warnings, fmt.Sprintf("pct=%s is not 0-100, 100 applies", s))
		} else {
			rec.Pct = n
		}
	}
	return rec, nil
}

func splitURIs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// validReportURI: an absolute URI (RFC 7489 §6.2), optionally followed by
// "!size".
func validReportURI(s string) bool {
	if i := strings.LastIndexByte(s, '!'); i > 0 {
		s = s[:i]
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && (u.Opaque != "" || u.Host != "")
}

// TXTResolver is the lookup DMARC needs; *resolver.Resolver is one.
type TXTResolver interface {
	TXT(ctx context.Context, name string) ([]string, resolver.Status, error)
}

// LookupDMARC discovers the policy for a From domain (RFC 7489 §6.6.3):
// the record at _dmarc.DOMAIN, else the one at the organizational
// domain's. It returns the record and the domain it was found at; a nil
// record and nil error mean there is none. A temporary DNS failure is
// returned as is (resolver.IsTemporary); any other error (several DMARC
// records, an unusable one) is permanent.
func LookupDMARC(ctx context.Context, res TXTResolver, fromDomain string) (*DMARCRecord, string, error) {
	fromDomain = normDomain(fromDomain)
	rec, err := lookupDMARCAt(ctx, res, fromDomain)
	if rec != nil || err != nil {
		return rec, fromDomain, err
	}
	org := OrgDomain(fromDomain)
	if org == fromDomain {
		return nil, "", nil
	}
	rec, err = lookupDMARCAt(ctx, res, org)
	if rec != nil || err != nil {
		return rec, org, err
	}
	return nil, "", nil
}

func lookupDMARCAt(ctx context.Context, res TXTResolver, domain string) (*DMARCRecord, error) {
	txts, _, err := res.TXT(ctx, "_dmarc."+domain)
	if err != nil {
		if resolver.IsTemporary(err) {
			return nil, err
		}
		return nil, nil // not a name DNS can hold: no record
	}
	var recs []*DMARCRecord
	var bad error
	for _, t := range txts {
		rec, err := ParseDMARC(t)
		switch {
		case errors.Is(err, ErrNotDMARC):
			continue
		case err != nil:
			bad = err
		}
		recs = append(recs, rec)
	}
	switch {
	case len(recs) > 1:
		return nil, fmt.Errorf("_dmarc.%s has %d DMARC records (RFC 7489 §6.6.3: none applies)", domain, len(recs))
	case bad != nil:
		return nil, fmt.Errorf("_dmarc.%s: %w", domain, bad)
	case len(recs) == 1:
		return recs[0], nil
	}
	return nil, nil
}

// OrgDomain is the organizational domain of d (RFC 7489 §3.2): the public
// suffix plus one label (golang.org/x/net/publicsuffix, ICANN and private
// sections). A name that is itself a public suffix is its own
// organizational domain.
func OrgDomain(d string) string {
	d = normDomain(d)
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// Aligned reports whether two domains are aligned (RFC 7489 §3.1): equal
// in strict mode, the same organizational domain in relaxed mode.
func Aligned(a, b string, strict bool) bool {
	a, b = normDomain(a), normDomain(b)
	if a == "" || b == "" {
		return false
	}
	if strict {
		return a == b
	}
	return a == b || OrgDomain(a) == OrgDomain(b)
}

// DMARCResult is the DMARC outcome for a message.
type DMARCResult struct {
	Status     Status // pass, fail, none, temperror, permerror; "" if not checked
	FromDomain string // the RFC5322.From domain evaluated (header.from)
	// RecordDomain is where the record was found: FromDomain, or its
	// organizational domain.
	RecordDomain string
	// Policy is the published policy that applies to FromDomain: p=, or
	// sp= when the record is the organizational domain's and has one.
	// "" without a record.
	Policy Disposition
	// Disposition is what the policy asks for this message: none unless
	// it failed; on failure Policy, or one step milder when pct= sampling
	// left the message out (RFC 7489 §6.6.4).
	Disposition Disposition
	Pct         int
	AlignedDKIM string // d= of the aligned passing signature, if any
	AlignedSPF  string // the aligned SPF-passing domain, if any
	Reason      string
	// Record is the record that applied (nil without one): aggregate
	// reports publish it (RFC 7489 §7.2.1.1 policy_published) and are
	// sent to its rua=.
	Record *DMARCRecord
}

// DMARCOptions are the knobs tests need.
type DMARCOptions struct {
	// Rand returns a number in [0, n); nil means math/rand/v2.IntN.
	// pct= sampling applies the policy when Rand(100) < pct.
	Rand func(n int) int
}

// MaxFromDomains is how many distinct From domains CheckDMARC evaluates.
// Each costs up to two TXT lookups, and one 100 KB From field can name
// thousands of domains.
const MaxFromDomains = 5

// CheckDMARC evaluates DMARC for a message from its header fields and
// the DKIM and SPF results.
//
// RFC 7489 §6.6.1 on author domains (mailtext.Authors reads them): no
// From field, or no address in it, is permerror (no header.from, nothing
// to enforce). Several From domains (several From fields, or one with
// several addresses) are each evaluated, and the result reported is the
// worst one: a failure with the strictest disposition first, then
// temperror, permerror, none, pass. That is the RFC's "apply the most
// strict policy selected among the checks that fail", and it keeps a
// second From address from being a way around a p=reject. For the same
// reason an address whose domain is invalid counts as permerror beside
// the others rather than instead of them.
//
// More than MaxFromDomains distinct domains are not evaluated at all: the
// result is fail with disposition reject. The domains not looked up may
// publish p=reject, so anything milder would let a forger hide a
// p=reject domain behind five others; §6.6.1 lets a receiver reject
// messages with several authors, and real ones name one or two.
func CheckDMARC(ctx context.Context, res TXTResolver, headers []mailtext.Header, dkim []DKIMResult, spf SPFResult, opts *DMARCOptions) DMARCResult {
	authors, fields := mailtext.Authors(headers)
	var domains []string
	var invalid error // the first address without a usable domain
	for _, a := range authors {
		switch {
		case a.Err != nil:
			if invalid == nil {
				invalid = a.Err
			}
		case !slices.Contains(domains, a.Domain):
			domains = append(domains, a.Domain)
		}
	}
	switch {
	case fields == 0:
		return DMARCResult{Status: PermError, Reason: mailtext.ErrNoAuthor.Error()}
	case len(authors) == 0:
		return DMARCResult{Status: PermError, Reason: "no address in From"}
	case len(domains) > MaxFromDomains:
		return DMARCResult{Status: Fail, FromDomain: domains[0], Disposition: DispReject,
			Reason: fmt.Sprintf("%d From domains, more than %d: not evaluated, read as failing with p=reject (RFC 7489 §6.6.1)", len(domains), MaxFromDomains)}
	}
	var worst DMARCResult
	if invalid != nil {
		worst = DMARCResult{Status: PermError, Reason: invalid.Error()}
	}
	for _, d := range domains {
		rec, at, err := LookupDMARC(ctx, res, d)
		var r DMARCResult
		switch {
		case err != nil && resolver.IsTemporary(err):
			r = DMARCResult{Status: TempError, FromDomain: d, Reason: "DNS failure looking up the DMARC record: " + err.Error()}
		case err != nil:
			r = DMARCResult{Status: PermError, FromDomain: d, Reason: err.Error()}
		default:
			r = EvaluateDMARC(d, rec, at, dkim, spf, opts)
		}
		if worst.Status == "" || dmarcRank(r) > dmarcRank(worst) {
			worst = r
		}
	}
	return worst
}

// dmarcRank orders results for several From domains: higher is worse.
func dmarcRank(r DMARCResult) int {
	switch r.Status {
	case Fail:
		return 10 + map[Disposition]int{DispNone: 0, DispQuarantine: 1, DispReject: 2}[r.Disposition]
	case TempError:
		return 4
	case PermError:
		return 3
	case None:
		return 2
	}
	return 1
}

// EvaluateDMARC applies a discovered record (nil: none) to the
// authentication results: it passes when a passing DKIM signature's d= or
// the SPF-passing domain is aligned with fromDomain (RFC 7489 §4.2).
// Without an aligned pass, a temporary failure that might have produced
// one (an aligned signature whose key lookup failed, an SPF temperror for
// an aligned domain) gives temperror, which is never enforced.
func EvaluateDMARC(fromDomain string, rec *DMARCRecord, recordDomain string, dkim []DKIMResult, spf SPFResult, opts *DMARCOptions) DMARCResult {
	fromDomain = normDomain(fromDomain)
	r := DMARCResult{FromDomain: fromDomain}
	if rec == nil {
		r.Status, r.Reason = None, "no DMARC record"
		return r
	}
	r.RecordDomain, r.Pct, r.Record = normDomain(recordDomain), rec.Pct, rec
	r.Policy = rec.Policy
	if r.RecordDomain != fromDomain && rec.SubdomainPolicy != "" {
		r.Policy = rec.SubdomainPolicy // §6.3: sp= for subdomains of the organizational domain
	}
	tempErr := ""
	for _, d := range dkim {
		if !Aligned(d.Domain, fromDomain, rec.ADKIM == "s") {
			continue
		}
		if d.Status == Pass {
			r.AlignedDKIM = d.Domain
			break
		}
		if d.Status == TempError && tempErr == "" {
			tempErr = "DKIM key for " + d.Domain + " unavailable"
		}
	}
	if Aligned(spf.Domain, fromDomain, rec.ASPF == "s") {
		switch spf.Status {
		case Pass:
			r.AlignedSPF = spf.Domain
		case TempError:
			if tempErr == "" {
				tempErr = "SPF temperror for " + spf.Domain
			}
		}
	}
	switch {
	case r.AlignedDKIM != "" || r.AlignedSPF != "":
		r.Status, r.Disposition = Pass, DispNone
		return r
	case tempErr != "":
		r.Status, r.Disposition, r.Reason = TempError, DispNone, tempErr
		return r
	}
	r.Status, r.Disposition = Fail, r.Policy
	r.Reason = "no aligned DKIM or SPF pass"
	if r.Pct < 100 && r.Policy != DispNone {
		rnd := rand.IntN
		if opts != nil && opts.Rand != nil {
			rnd = opts.Rand
		}
		if rnd(100) >= r.Pct {
			// §6.6.4: outside the sample, the next milder policy applies.
			if r.Policy == DispReject {
				r.Disposition = DispQuarantine
			} else {
				r.Disposition = DispNone
			}
			r.Reason += fmt.Sprintf(" (p=%s not applied: outside pct=%d)", r.Policy, r.Pct)
		}
	}
	return r
}
