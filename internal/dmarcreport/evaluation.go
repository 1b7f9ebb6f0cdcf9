package dmarcreport

import (
	"net/netip"
	"strings"
	"time"

	"vouch/internal/verify"
	"vouch/policy"
)

// Inbound is what the milter knows about one message at its end: the
// input of NewEvaluation.
type Inbound struct {
	Time     time.Time
	ClientIP netip.Addr
	MailFrom string // the envelope sender as given ("" or "<>" for the null sender)
	// TrustedBy says why the client is trusted (internal_hosts, SMTP
	// AUTH); "" for an outside client. Nothing is reported about mail
	// from trusted clients: it is the admin's own.
	TrustedBy string
	Results   verify.Results
	Decision  policy.MessageDecision
	Allowlist string // the verify.allowlist entry that exempted the message, or ""
}

// NewEvaluation is the report row for one message, and false when the
// message is not reported: from a trusted client, DMARC neither pass nor
// fail (none, temperror, permerror: RFC 7489 §7.2 reports evaluated
// policies only), or a record without rua= (nobody asked for reports).
func NewEvaluation(in Inbound) (Evaluation, bool) {
	dm := in.Results.DMARC
	rec := dm.Record
	if in.TrustedBy != "" || (dm.Status != verify.Pass && dm.Status != verify.Fail) || rec == nil || len(rec.RUA) == 0 {
		return Evaluation{}, false
	}
	disp, reasons := applied(in)
	ev := Evaluation{
		Time: in.Time.UTC(),
		Policy: PolicyPublished{
			Domain: dm.RecordDomain, ADKIM: rec.ADKIM, ASPF: rec.ASPF,
			P: string(rec.Policy), SP: string(rec.SubdomainPolicy), Pct: rec.Pct, FO: rec.FO,
		},
		RUA: rec.RUA,
		Record: Record{
			Row: Row{
				SourceIP: in.ClientIP.Unmap().String(),
				Count:    1,
				PolicyEvaluated: PolicyEvaluated{
					Disposition: disp,
					DKIM:        passOrFail(dm.AlignedDKIM != ""),
					SPF:         passOrFail(dm.AlignedSPF != ""),
					Reasons:     reasons,
				},
			},
			Identifiers: Identifiers{HeaderFrom: dm.FromDomain, EnvelopeFrom: envelopeDomain(in.MailFrom)},
			AuthResults: authResults(in.Results),
		},
	}
	return ev, true
}

// applied is the disposition vouch applied (RFC 7489 §7.2.1.1: what was
// done, not what the policy asked) and the overrides that explain where it
// differs from the published policy.
func applied(in Inbound) (string, []PolicyOverride) {
	dm, d := in.Results.DMARC, in.Decision
	var reasons []PolicyOverride
	add := func(typ, comment string) { reasons = append(reasons, PolicyOverride{Type: typ, Comment: comment}) }
	// §6.6.4: outside the pct= sample the next milder policy applied.
	if dm.Status == verify.Fail && dm.Disposition != dm.Policy {
		add("sampled_out", "")
	}
	disp := verify.DispNone
	switch d.Action {
	case policy.MsgReject:
		disp = verify.DispReject
	case policy.MsgQuarantine:
		disp = verify.DispQuarantine
	case policy.MsgTempfail:
		// Not delivered now, but not refused either: the sender retries.
		if d.Trial {
			add("local_policy", "trial mode: would reject, answered with a temporary failure")
		} else {
			add("local_policy", "temporary failure ("+d.Cause+")")
		}
		return string(disp), reasons
	}
	switch {
	case d.Allowlisted || in.Allowlist != "":
		add("local_policy", "allowlisted: "+in.Allowlist)
	case dm.Status == verify.Fail && severity(disp) < severity(dm.Disposition):
		// The admin's verify.dmarc_reject / dmarc_quarantine action.
		key := "dmarc_reject"
		if dm.Disposition == verify.DispQuarantine {
			key = "dmarc_quarantine"
		}
		add("local_policy", "verify."+key+" = "+actionName(disp))
	case severity(disp) > severity(dm.Disposition):
		// Refused or held for another result (SPF, DKIM).
		add("local_policy", d.Cause)
	}
	return string(disp), reasons
}

func severity(d verify.Disposition) int {
	return map[verify.Disposition]int{verify.DispQuarantine: 1, verify.DispReject: 2}[d]
}

// actionName is the [verify] action that gives disposition d.
func actionName(d verify.Disposition) string {
	if d == verify.DispNone {
		return "accept"
	}
	return string(d)
}

func passOrFail(pass bool) string {
	if pass {
		return "pass"
	}
	return "fail"
}

// envelopeDomain is the RFC5321.MailFrom domain ("" for the null sender).
func envelopeDomain(mailFrom string) string {
	mailFrom = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(mailFrom), "<"), ">")
	at := strings.LastIndexByte(mailFrom, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(mailFrom[at+1:], "."))
}

// authResults are the raw results (§7.2.1.1 auth_results): every DKIM
// signature verified, and SPF with its scope.
func authResults(r verify.Results) AuthResults {
	var ar AuthResults
	for _, d := range r.DKIM {
		ar.DKIM = append(ar.DKIM, DKIMAuthResult{Domain: d.Domain, Selector: d.Selector, Result: string(d.Status)})
	}
	spf := SPFAuthResult{Domain: r.SPF.Domain, Scope: "mfrom", Result: string(r.SPF.Status)}
	if r.SPF.Identity == "helo" {
		spf.Scope = "helo"
	}
	if spf.Result == "" {
		spf.Result = string(verify.None)
	}
	ar.SPF = []SPFAuthResult{spf}
	return ar
}
