package domaincheck

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"vouch/internal/resolver"
	"vouch/internal/verify"
)

// checkDMARC finds the policy as receivers do (verify.LookupDMARC: the
// domain's own record, else its organizational domain's) and judges it.
func (c *checker) checkDMARC() {
	name := "_dmarc." + c.domain
	starter := name + `. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@` + c.domain + `"`
	rec, at, err := verify.LookupDMARC(c.ctx, c.res, c.domain)
	switch {
	case err != nil && resolver.IsTemporary(err):
		c.add("dmarc", "DMARC", Warn, "could not look it up: "+err.Error()+".", "", "")
		c.checkAlignment(nil)
		return
	case err != nil:
		c.add("dmarc", "DMARC", Fail, err.Error()+": receivers apply no policy; keep one valid record.", "", starter)
		c.checkAlignment(nil)
		return
	case rec == nil:
		c.add("dmarc", "DMARC", Fail, "no DMARC record: receivers apply no policy to mail forged in your name, and you get no reports.", "", starter)
		c.checkAlignment(nil)
		return
	}
	raw := c.dmarcText(at)
	c.dmarcADKIMs = rec.ADKIM == "s"
	if at != c.domain {
		p := rec.Policy
		if rec.SubdomainPolicy != "" {
			p = rec.SubdomainPolicy
		}
		c.add("dmarc", "DMARC", c.policyStatus(p), fmt.Sprintf("no record of its own: the organizational domain's (_dmarc.%s) applies, policy %s%s.", at, p, policyAdvice(p)), raw, "")
		c.checkAlignment(rec)
		return
	}
	msg := "policy " + string(rec.Policy)
	if rec.SubdomainPolicy != "" && rec.SubdomainPolicy != rec.Policy {
		msg += ", subdomains " + string(rec.SubdomainPolicy)
	}
	status := c.policyStatus(rec.Policy)
	msg += policyAdvice(rec.Policy)
	if rec.Pct < 100 && rec.Policy != verify.DispNone {
		msg += fmt.Sprintf("; pct=%d: only %d%% of failing mail gets it", rec.Pct, rec.Pct)
		status = Warn
	}
	if len(rec.Warnings) > 0 {
		msg += "; " + strings.Join(rec.Warnings, "; ")
		status = Warn
	}
	c.add("dmarc", "DMARC", status, msg+".", raw, "")

	if len(rec.RUA) == 0 {
		c.add("dmarc", "DMARC reports", Warn, "no rua=: you get no aggregate reports, so you cannot see who sends in your name.", "",
			name+". IN TXT \""+strings.TrimRight(strings.TrimSpace(raw), ";")+"; rua=mailto:dmarc-reports@"+c.domain+"\"")
	} else {
		c.checkReportURIs(rec.RUA)
	}
	c.checkAlignment(rec)
}

// dmarcText is the DMARC record at _dmarc.DOMAIN as published, for the
// report (LookupDMARC found it there, so the answer is in the cache).
func (c *checker) dmarcText(domain string) string {
	txts, _, _ := c.res.TXT(c.ctx, "_dmarc."+domain)
	for _, t := range txts {
		if _, err := verify.ParseDMARC(t); !errors.Is(err, verify.ErrNotDMARC) {
			return t
		}
	}
	return ""
}

func (c *checker) policyStatus(p verify.Disposition) string {
	if p == verify.DispNone {
		return Warn
	}
	return OK
}

func policyAdvice(p verify.Disposition) string {
	if p == verify.DispNone {
		return " (monitoring only: move to quarantine, then reject, once the reports show only your own mail)"
	}
	return ""
}

// checkReportURIs: mailto: report addresses outside the domain need the
// receiving domain's consent (RFC 7489 §7.1).
func (c *checker) checkReportURIs(uris []string) {
	var external []string
	for _, u := range uris {
		addr, ok := strings.CutPrefix(strings.ToLower(u), "mailto:")
		if !ok {
			continue
		}
		if i := strings.IndexByte(addr, '!'); i >= 0 {
			addr = addr[:i]
		}
		at := strings.LastIndexByte(addr, '@')
		if at < 0 {
			continue
		}
		rd := addr[at+1:]
		if verify.OrgDomain(rd) == verify.OrgDomain(c.domain) {
			continue
		}
		txts, _, err := c.res.TXT(c.ctx, c.domain+"._report._dmarc."+rd)
		authorized := err == nil && slices.ContainsFunc(txts, func(t string) bool { return strings.HasPrefix(t, "v=DMARC1") })
		if !authorized && err == nil {
			external = append(external, rd)
		}
	}
	if len(external) > 0 {
		c.add("dmarc", "DMARC reports", Warn, fmt.Sprintf("reports go to %s, which does not publish %s._report._dmarc.%s: receivers will not send them (RFC 7489 §7.1).",
			strings.Join(external, ", "), c.domain, external[0]), "", c.domain+"._report._dmarc."+external[0]+`. IN TXT "v=DMARC1"`)
		return
	}
	c.add("dmarc", "DMARC reports", OK, "aggregate reports go to "+strings.Join(uris, ", ")+".", "", "")
}

// checkAlignment: can DMARC pass? It needs a working DKIM key whose d= is
// aligned with the domain, or an SPF record for the MAIL FROM domain
// (vouch's DKIM keys are for d=DOMAIN; SPF aligns when the envelope
// sender is @DOMAIN).
func (c *checker) checkAlignment(rec *verify.DMARCRecord) {
	dkim := c.dkimAligned
	if dkim == "" {
		// A key for a parent domain aligns in relaxed mode.
		for _, k := range c.keys {
			if k.Domain != c.domain && k.Domain != "%" && verify.Aligned(k.Domain, c.domain, c.dmarcADKIMs) {
				dkim = "d=" + k.Domain + " s=" + k.Selector + ", not checked here"
				break
			}
		}
	}
	switch {
	case dkim != "" && c.spfUsable:
		c.add("dmarc", "DMARC alignment", OK, "DKIM ("+dkim+") and SPF (MAIL FROM @"+c.domain+") can both pass aligned.", "", "")
	case dkim != "":
		c.add("dmarc", "DMARC alignment", OK, "DKIM ("+dkim+") can pass aligned; SPF cannot (no usable record).", "", "")
	case c.dnsTrouble:
		c.add("dmarc", "DMARC alignment", Warn, "cannot tell whether DMARC can pass: a DNS lookup above failed.", "", "")
	case c.spfUsable:
		c.add("dmarc", "DMARC alignment", Warn, "only SPF can pass aligned (MAIL FROM @"+c.domain+"): forwarded mail will fail DMARC; sign with a published key for "+c.domain+".", "", "")
	default:
		c.add("dmarc", "DMARC alignment", Fail, "DMARC cannot pass: no published DKIM key for "+c.domain+" in the configuration and no usable SPF record.", "", "")
	}
}
