package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"vouch/internal/daemon"
	"vouch/internal/resolver"
	"vouch/internal/verify"
)

// Item statuses of `vouch check`.
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "fail"
)

// checkItem is one line of the report.
type checkItem struct {
	Check   string `json:"check"` // spf, dkim, dmarc, ptr, helo, mx
	Title   string `json:"title"`
	Status  string `json:"status"`            // ok, warn, fail
	Message string `json:"message"`           // one sentence
	Found   string `json:"found,omitempty"`   // the record as published
	Publish string `json:"publish,omitempty"` // the record to publish instead
}

// checkReport is the whole report (-json prints it as is).
type checkReport struct {
	Domain string      `json:"domain"`
	IP     string      `json:"ip,omitempty"`
	HELO   string      `json:"helo,omitempty"`
	Items  []checkItem `json:"items"`
	Result string      `json:"result"` // ok, warnings, failures
	Exit   int         `json:"exit"`
}

func checkCommand(args []string) int { return runCheck(args, os.Stdout) }

// runCheck is `vouch check`: is DOMAIN set up to send mail that passes
// SPF, DKIM and DMARC, and does the sending IP have forward-confirmed
// reverse DNS? Exit status 0 all good, 1 warnings, 2 failures, 3 usage or
// configuration error.
func runCheck(args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	configPath := fs.String("config", "", "config file: DNS servers and signing keys (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	ipFlag := fs.String("ip", "", "the address the domain's mail is sent from: SPF is evaluated for it and its PTR checked")
	helo := fs.String("helo", "", "the HELO name the server sends (default: the PTR name of -ip)")
	selector := fs.String("selector", "", "check this DKIM selector (default: the configured keys of DOMAIN)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vouch check [-config FILE] [-ip ADDR] [-helo NAME] [-selector SEL] [-json] DOMAIN\n\n"+
			"Checks the DNS of a sending domain: SPF, DKIM, DMARC, MX, and with -ip the\n"+
			"PTR and HELO of the sending server. Exit status: 0 all good, 1 warnings,\n"+
			"2 failures, 3 usage or configuration error.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 3
	}
	// The domain may come before the flags, too.
	rest := fs.Args()
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		if err := fs.Parse(rest[1:]); err != nil {
			return 3
		}
		rest = append([]string{rest[0]}, fs.Args()...)
	}
	if len(rest) != 1 {
		fs.Usage()
		return 3
	}
	domain := strings.ToLower(strings.TrimSuffix(rest[0], "."))
	var ip netip.Addr
	if *ipFlag != "" {
		var err error
		if ip, err = netip.ParseAddr(*ipFlag); err != nil {
			fmt.Fprintf(os.Stderr, "vouch check: -ip %q is not an IP address\n", *ipFlag)
			return 3
		}
		ip = ip.Unmap()
	}
	cfg, err := daemon.Load(*configPath)
	if err != nil {
		return fail("check", err, 3)
	}
	res, err := configResolver(cfg)
	if err != nil {
		return fail("check", err, 3)
	}
	keys, notes, err := configKeys(cfg)
	if err != nil {
		return fail("check", err, 3)
	}
	for _, n := range notes {
		fmt.Fprintf(os.Stderr, "vouch check: %s\n", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &checker{ctx: ctx, res: res, domain: domain, ip: ip, helo: strings.ToLower(strings.TrimSuffix(*helo, ".")), keys: keys, selector: *selector}
	rep := c.run()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printCheckReport(stdout, rep)
	}
	return rep.Exit
}

// checker holds what the checks share.
type checker struct {
	ctx      context.Context
	res      *resolver.Resolver
	domain   string
	ip       netip.Addr
	helo     string
	keys     []localKey
	selector string
	items    []checkItem

	spfUsable   bool   // one SPF record that parses: SPF can pass for MAIL FROM @domain
	dkimAligned string // "d=... s=..." of a working key aligned with the domain
	dmarcADKIMs bool   // adkim=s
	dnsTrouble  bool   // an SPF or DKIM lookup failed: alignment cannot be judged
}

func (c *checker) add(check, title, status, message string, found, publish string) {
	c.items = append(c.items, checkItem{Check: check, Title: title, Status: status, Message: message, Found: found, Publish: publish})
}

func (c *checker) run() checkReport {
	rep := checkReport{Domain: c.domain}
	if c.ip.IsValid() {
		rep.IP = c.ip.String()
	}
	c.checkSPF()
	c.checkDKIM()
	c.checkDMARC()
	if c.ip.IsValid() {
		c.checkPTRAndHELO()
	}
	c.checkMX()
	rep.HELO = c.helo
	rep.Items = c.items
	rep.Result = "ok"
	for _, it := range c.items {
		switch {
		case it.Status == checkFail:
			rep.Result, rep.Exit = "failures", 2
		case it.Status == checkWarn && rep.Exit == 0:
			rep.Result, rep.Exit = "warnings", 1
		}
	}
	return rep
}

// ---- SPF ----

func (c *checker) checkSPF() {
	txts, st, err := c.res.TXT(c.ctx, c.domain)
	if err != nil {
		c.add("spf", "SPF record", checkWarn, "could not look it up: "+err.Error()+".", "", "")
		c.dnsTrouble = true
		return
	}
	starter := `"v=spf1 mx -all"`
	if c.ip.IsValid() {
		starter = `"v=spf1 ` + ipMechanism(c.ip) + ` -all"`
	}
	records := spfRecords(txts)
	switch {
	case st == resolver.NXDomain:
		c.add("spf", "SPF record", checkFail, c.domain+" does not exist in DNS.", "", "")
		return
	case len(records) == 0:
		c.add("spf", "SPF record", checkFail, "no SPF record: receivers cannot tell your servers from forgers.", "", c.domain+". IN TXT "+starter)
		return
	case len(records) > 1:
		c.add("spf", "SPF record", checkFail, fmt.Sprintf("%d SPF records: receivers return permerror (RFC 7208 §4.5); merge them into one.", len(records)), strings.Join(records, " | "), "")
		return
	}
	record := records[0]
	w := &spfWalker{ctx: c.ctx, res: c.res, seen: map[string]bool{c.domain: true}}
	all := w.walk(c.domain, record, 0)
	switch {
	case w.temp != "":
		c.add("spf", "SPF record", checkWarn, "could not follow it: "+w.temp+".", record, "")
		c.dnsTrouble = true
		return
	case len(w.errs) > 0:
		c.add("spf", "SPF record", checkFail, w.errs[0]+": receivers return permerror.", record, "")
		return
	}
	c.spfUsable = w.lookups <= 10
	msg := "one record, it parses."
	status := checkOK
	if len(w.warns) > 0 {
		msg, status = "one record, it parses; "+strings.Join(w.warns, "; ")+".", checkWarn
	}
	c.add("spf", "SPF record", status, msg, record, "")

	switch {
	case w.lookups > 10:
		c.add("spf", "SPF lookups", checkFail, fmt.Sprintf("%d DNS lookups, more than the 10 allowed: receivers return permerror (RFC 7208 §4.6.4); flatten includes into ip4:/ip6:.", w.lookups), "", "")
	case w.macros:
		c.add("spf", "SPF lookups", checkWarn, fmt.Sprintf("at least %d of 10 DNS lookups; terms with macros were not followed.", w.lookups), "", "")
	default:
		c.add("spf", "SPF lookups", checkOK, fmt.Sprintf("%d of 10 DNS lookups.", w.lookups), "", "")
	}

	switch all {
	case "-":
		c.add("spf", "SPF all", checkOK, "ends in -all: other hosts fail.", "", "")
	case "~":
		c.add("spf", "SPF all", checkWarn, "ends in ~all (softfail): other hosts are only suspicious; use -all once every sender is listed.", "", "")
	case "?":
		c.add("spf", "SPF all", checkWarn, "ends in ?all (neutral): the record protects nothing; end it in -all.", "", "")
	case "+":
		c.add("spf", "SPF all", checkFail, "ends in +all: every host on the Internet may send for "+c.domain+"; end it in -all.", "", "")
	default:
		c.add("spf", "SPF all", checkWarn, "no all mechanism: other hosts get neutral; end it in -all.", "", "")
	}

	if c.ip.IsValid() {
		r := verify.CheckSPF(c.ctx, c.res, c.ip, c.helo, "postmaster@"+c.domain)
		switch r.Status {
		case verify.Pass:
			c.add("spf", "SPF for "+c.ip.String(), checkOK, c.ip.String()+" may send for "+c.domain+" (spf=pass).", "", "")
		case verify.TempError:
			c.add("spf", "SPF for "+c.ip.String(), checkWarn, "could not evaluate: "+r.Reason+".", "", "")
		default:
			c.add("spf", "SPF for "+c.ip.String(), checkFail, fmt.Sprintf("%s is not authorized: spf=%s (%s).", c.ip, r.Status, r.Reason), "",
				c.domain+". IN TXT \""+addIPToSPF(record, c.ip)+"\"")
		}
	}
}

// spfRecords keeps the TXT records that are SPF records (RFC 7208 §4.5).
func spfRecords(txts []string) []string {
	var out []string
	for _, t := range txts {
		l := strings.ToLower(t)
		if l == "v=spf1" || strings.HasPrefix(l, "v=spf1 ") {
			out = append(out, t)
		}
	}
	return out
}

func ipMechanism(ip netip.Addr) string {
	if ip.Is4() {
		return "ip4:" + ip.String()
	}
	return "ip6:" + ip.String()
}

// addIPToSPF puts the IP's mechanism right after v=spf1.
func addIPToSPF(record string, ip netip.Addr) string {
	return "v=spf1 " + ipMechanism(ip) + record[len("v=spf1"):]
}

// spfWalker follows an SPF record the way an evaluator would, without a
// client address: it checks every term's syntax, counts the terms that
// cost a DNS lookup (include, a, mx, ptr, exists, redirect; RFC 7208
// §4.6.4) through includes and redirects, and finds the all that ends
// the evaluation.
type spfWalker struct {
	ctx     context.Context
	res     *resolver.Resolver
	seen    map[string]bool
	lookups int
	macros  bool
	errs    []string
	warns   []string
	temp    string
}

var spfModifier = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]*=`)

// walk checks record (of domain) and returns the qualifier of the all
// that ends it ("" if none), following redirect=.
func (w *spfWalker) walk(domain, record string, depth int) string {
	fields := strings.Fields(record)[1:]
	all, redirect := "", ""
	for _, f := range fields {
		if spfModifier.MatchString(f) {
			name, value, _ := strings.Cut(f, "=")
			switch strings.ToLower(name) {
			case "redirect":
				if redirect != "" {
					w.errs = append(w.errs, domain+": more than one redirect=")
				}
				redirect = value
			case "exp":
			}
			continue
		}
		q := "+"
		if strings.ContainsRune("+-~?", rune(f[0])) {
			q, f = f[:1], f[1:]
		}
		mech, arg, hasArg := strings.Cut(f, ":")
		mech = strings.ToLower(mech)
		cidr := ""
		if i := strings.IndexByte(mech, '/'); i >= 0 && !hasArg {
			mech, cidr = mech[:i], mech[i:]
		} else if hasArg && (mech == "a" || mech == "mx") {
			if i := strings.IndexByte(arg, '/'); i >= 0 {
				arg, cidr = arg[:i], arg[i:]
			}
		}
		switch mech {
		case "all":
			if hasArg || cidr != "" {
				w.errs = append(w.errs, fmt.Sprintf("%s: bad term %q", domain, f))
			}
			if all == "" {
				all = q
			}
		case "include", "exists":
			w.lookups++
			if !hasArg || arg == "" {
				w.errs = append(w.errs, fmt.Sprintf("%s: %s needs a domain", domain, mech))
				continue
			}
			if strings.Contains(arg, "%") {
				w.macros = true
				continue
			}
			if mech == "include" && depth < 10 {
				if rec, ok := w.fetch(domain, "include:"+arg, arg); ok {
					w.walk(arg, rec, depth+1)
				}
			}
		case "a", "mx", "ptr":
			w.lookups++
			if mech == "ptr" {
				w.warns = append(w.warns, "ptr is slow and deprecated (RFC 7208 §5.5)")
			}
			if hasArg && strings.Contains(arg, "%") {
				w.macros = true
			}
			if !validSPFCIDR(cidr) || mech == "ptr" && cidr != "" {
				w.errs = append(w.errs, fmt.Sprintf("%s: bad prefix length in %q", domain, f))
			}
		case "ip4", "ip6":
			if !validIPTerm(mech, arg) {
				w.errs = append(w.errs, fmt.Sprintf("%s: bad address in %q", domain, f))
			}
		default:
			w.errs = append(w.errs, fmt.Sprintf("%s: unknown term %q", domain, f))
		}
	}
	if redirect != "" {
		w.lookups++
		switch {
		case all != "":
			w.warns = append(w.warns, "redirect= is ignored because the record has an all")
		case strings.Contains(redirect, "%"):
			w.macros = true
		case depth < 10:
			if rec, ok := w.fetch(domain, "redirect="+redirect, redirect); ok {
				all = w.walk(redirect, rec, depth+1)
			}
		}
	}
	return all
}

// fetch gets the one SPF record of target, for a term of domain.
func (w *spfWalker) fetch(domain, term, target string) (string, bool) {
	target = strings.ToLower(strings.TrimSuffix(target, "."))
	if w.seen[target] {
		w.errs = append(w.errs, fmt.Sprintf("%s: %s loops back", domain, term))
		return "", false
	}
	w.seen[target] = true
	txts, _, err := w.res.TXT(w.ctx, target)
	if err != nil {
		if resolver.IsTemporary(err) {
			w.temp = fmt.Sprintf("%s: %v", term, err)
		} else {
			w.errs = append(w.errs, fmt.Sprintf("%s: %s is not a valid name", domain, term))
		}
		return "", false
	}
	recs := spfRecords(txts)
	switch len(recs) {
	case 0:
		w.errs = append(w.errs, fmt.Sprintf("%s: %s has no SPF record", domain, term))
		return "", false
	case 1:
		return recs[0], true
	}
	w.errs = append(w.errs, fmt.Sprintf("%s: %s has %d SPF records", domain, term, len(recs)))
	return "", false
}

func validSPFCIDR(cidr string) bool {
	if cidr == "" {
		return true
	}
	v4, v6, dual := strings.Cut(cidr[1:], "//")
	if !dual && strings.HasPrefix(cidr, "//") {
		v4, v6 = "", cidr[2:]
	}
	ok := func(s string, max int) bool {
		if s == "" {
			return true
		}
		var n int
		_, err := fmt.Sscanf(s, "%d", &n)
		return err == nil && fmt.Sprint(n) == s && n >= 0 && n <= max
	}
	return ok(v4, 32) && ok(v6, 128)
}

func validIPTerm(mech, arg string) bool {
	if strings.Contains(arg, "/") {
		p, err := netip.ParsePrefix(arg)
		return err == nil && (mech == "ip4") == p.Addr().Is4()
	}
	a, err := netip.ParseAddr(arg)
	return err == nil && (mech == "ip4") == a.Is4()
}

// ---- DKIM ----

func (c *checker) checkDKIM() {
	type sel struct {
		name string
		key  localKey
	}
	var sels []sel
	for _, k := range c.keys {
		if (k.Domain == c.domain || k.Domain == "%") && (c.selector == "" || k.Selector == c.selector) {
			sels = append(sels, sel{k.Selector, k})
		}
	}
	if c.selector != "" && len(sels) == 0 {
		sels = append(sels, sel{name: c.selector})
	}
	if len(sels) == 0 {
		c.add("dkim", "DKIM", checkWarn, "no key for "+c.domain+" in the configuration: vouch does not sign its mail (add a [[signing.key]], or give -selector to check a published key).", "", "")
		return
	}
	for _, s := range sels {
		title := "DKIM " + s.name + "._domainkey." + c.domain
		kc := checkDKIMKey(c.ctx, c.res, c.domain, s.name, s.key.Signer)
		switch kc.Exit {
		case exitKeyOK:
			msg := "published"
			if kc.Matches {
				msg = "published, matches the key of " + s.key.Source
				if c.dkimAligned == "" {
					c.dkimAligned = "d=" + c.domain + " s=" + s.name
				}
			}
			desc := kc.Alg
			if kc.Alg == "rsa" {
				desc = fmt.Sprintf("rsa %d bits", kc.Bits)
			}
			msg += " (" + desc + ")"
			if kc.Warning != "" {
				c.add("dkim", title, checkWarn, msg+"; "+kc.Warning+".", "", "")
			} else {
				c.add("dkim", title, checkOK, msg+".", "", "")
			}
		case exitTempFail:
			c.add("dkim", title, checkWarn, "could not look it up: "+strings.TrimPrefix(kc.Message, "DNS failure: ")+".", "", "")
			c.dnsTrouble = true
		case exitUnavailable:
			c.add("dkim", title, checkFail, "not published: receivers cannot verify the signatures vouch adds.", "", kc.Publish)
		default:
			found := kc.Found
			if len(found) > 120 {
				found = found[:117] + "..."
			}
			c.add("dkim", title, checkFail, kc.Message+".", found, kc.Publish)
		}
	}
}

// ---- DMARC ----

func (c *checker) checkDMARC() {
	name := "_dmarc." + c.domain
	starter := name + `. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@` + c.domain + `"`
	rec, raw, err := c.dmarcAt(c.domain)
	switch {
	case err != nil && resolver.IsTemporary(err):
		c.add("dmarc", "DMARC", checkWarn, "could not look it up: "+err.Error()+".", "", "")
		c.checkAlignment(nil)
		return
	case err != nil:
		c.add("dmarc", "DMARC", checkFail, err.Error()+".", raw, starter)
		c.checkAlignment(nil)
		return
	case rec == nil:
		org := verify.OrgDomain(c.domain)
		if org != c.domain {
			orec, oraw, oerr := c.dmarcAt(org)
			if oerr == nil && orec != nil {
				p := orec.Policy
				if orec.SubdomainPolicy != "" {
					p = orec.SubdomainPolicy
				}
				c.dmarcADKIMs = orec.ADKIM == "s"
				c.add("dmarc", "DMARC", c.policyStatus(p), fmt.Sprintf("no record of its own: the organizational domain's (_dmarc.%s) applies, policy %s%s.", org, p, policyAdvice(p)), oraw, "")
				c.checkAlignment(orec)
				return
			}
		}
		c.add("dmarc", "DMARC", checkFail, "no DMARC record: receivers apply no policy to mail forged in your name, and you get no reports.", "", starter)
		c.checkAlignment(nil)
		return
	}
	c.dmarcADKIMs = rec.ADKIM == "s"
	msg := "policy " + string(rec.Policy)
	if rec.SubdomainPolicy != "" && rec.SubdomainPolicy != rec.Policy {
		msg += ", subdomains " + string(rec.SubdomainPolicy)
	}
	status := c.policyStatus(rec.Policy)
	msg += policyAdvice(rec.Policy)
	if rec.Pct < 100 && rec.Policy != verify.DispNone {
		msg += fmt.Sprintf("; pct=%d: only %d%% of failing mail gets it", rec.Pct, rec.Pct)
		status = checkWarn
	}
	if len(rec.Warnings) > 0 {
		msg += "; " + strings.Join(rec.Warnings, "; ")
		status = checkWarn
	}
	c.add("dmarc", "DMARC", status, msg+".", raw, "")

	if len(rec.RUA) == 0 {
		c.add("dmarc", "DMARC reports", checkWarn, "no rua=: you get no aggregate reports, so you cannot see who sends in your name.", "",
			name+". IN TXT \""+strings.TrimRight(strings.TrimSpace(raw), ";")+"; rua=mailto:dmarc-reports@"+c.domain+"\"")
	} else {
		c.checkReportURIs(rec.RUA)
	}
	c.checkAlignment(rec)
}

func (c *checker) policyStatus(p verify.Disposition) string {
	if p == verify.DispNone {
		return checkWarn
	}
	return checkOK
}

func policyAdvice(p verify.Disposition) string {
	if p == verify.DispNone {
		return " (monitoring only: move to quarantine, then reject, once the reports show only your own mail)"
	}
	return ""
}

// dmarcAt returns the DMARC record at _dmarc.DOMAIN (nil if none) and its
// text.
func (c *checker) dmarcAt(domain string) (*verify.DMARCRecord, string, error) {
	txts, _, err := c.res.TXT(c.ctx, "_dmarc."+domain)
	if err != nil {
		return nil, "", err
	}
	var recs []*verify.DMARCRecord
	var raws []string
	var bad error
	for _, t := range txts {
		r, err := verify.ParseDMARC(t)
		if errors.Is(err, verify.ErrNotDMARC) {
			continue
		}
		if err != nil {
			bad = err
		}
		recs, raws = append(recs, r), append(raws, t)
	}
	switch {
	case len(recs) > 1:
		return nil, strings.Join(raws, " | "), fmt.Errorf("%d DMARC records: receivers apply none of them (RFC 7489 §6.6.3); keep one", len(recs))
	case bad != nil:
		return nil, raws[0], fmt.Errorf("the record cannot be used: %v", bad)
	case len(recs) == 1:
		return recs[0], raws[0], nil
	}
	return nil, "", nil
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
		c.add("dmarc", "DMARC reports", checkWarn, fmt.Sprintf("reports go to %s, which does not publish %s._report._dmarc.%s: receivers will not send them (RFC 7489 §7.1).",
			strings.Join(external, ", "), c.domain, external[0]), "", c.domain+"._report._dmarc."+external[0]+`. IN TXT "v=DMARC1"`)
		return
	}
	c.add("dmarc", "DMARC reports", checkOK, "aggregate reports go to "+strings.Join(uris, ", ")+".", "", "")
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
		c.add("dmarc", "DMARC alignment", checkOK, "DKIM ("+dkim+") and SPF (MAIL FROM @"+c.domain+") can both pass aligned.", "", "")
	case dkim != "":
		c.add("dmarc", "DMARC alignment", checkOK, "DKIM ("+dkim+") can pass aligned; SPF cannot (no usable record).", "", "")
	case c.dnsTrouble:
		c.add("dmarc", "DMARC alignment", checkWarn, "cannot tell whether DMARC can pass: a DNS lookup above failed.", "", "")
	case c.spfUsable:
		c.add("dmarc", "DMARC alignment", checkWarn, "only SPF can pass aligned (MAIL FROM @"+c.domain+"): forwarded mail will fail DMARC; sign with a published key for "+c.domain+".", "", "")
	default:
		c.add("dmarc", "DMARC alignment", checkFail, "DMARC cannot pass: no published DKIM key for "+c.domain+" in the configuration and no usable SPF record.", "", "")
	}
}

// ---- PTR and HELO ----

func (c *checker) checkPTRAndHELO() {
	ip := c.ip
	title := "PTR " + ip.String()
	arpa, _ := mdns.ReverseAddr(ip.String())
	want := c.helo
	if want == "" {
		want = "mail." + c.domain
	}
	names, st, err := c.res.PTR(c.ctx, ip)
	confirmed := ""
	switch {
	case err != nil:
		c.add("ptr", title, checkWarn, "could not look it up: "+err.Error()+".", "", "")
	case st != resolver.Found:
		c.add("ptr", title, checkFail, "no PTR record: many receivers refuse mail from addresses without reverse DNS (ask whoever runs the reverse zone of "+ip.String()+").", "", arpa+" IN PTR "+want+".")
	default:
		tempErr := ""
		for _, n := range names[:min(len(names), 10)] {
			addrs, _, err := c.res.Addrs(c.ctx, n, ip.Is4(), ip.Is6())
			if err != nil && tempErr == "" {
				tempErr = err.Error()
			}
			if slices.Contains(addrs, ip) {
				confirmed = strings.TrimSuffix(n, ".")
				break
			}
		}
		shown := strings.TrimSuffix(strings.Join(names, " "), ".")
		switch {
		case confirmed != "":
			c.add("ptr", title, checkOK, ip.String()+" → "+confirmed+" → "+ip.String()+" (forward-confirmed).", "", "")
		case tempErr != "":
			c.add("ptr", title, checkWarn, "PTR "+shown+", but its address lookup failed: "+tempErr+".", "", "")
		default:
			first := strings.TrimSuffix(names[0], ".")
			c.add("ptr", title, checkFail, "PTR "+shown+", but no PTR name resolves back to "+ip.String()+" (receivers see it as unverified).", "", first+". IN "+addrType(ip)+" "+ip.String())
		}
		if c.helo == "" {
			c.helo = confirmed
			if c.helo == "" {
				c.helo = strings.TrimSuffix(names[0], ".")
			}
		}
	}
	if c.helo == "" {
		return
	}
	title = "HELO " + c.helo
	if !validHostName(c.helo) {
		c.add("helo", title, checkFail, "not a fully qualified host name: receivers refuse or distrust it.", "", "")
		return
	}
	addrs, hst, err := c.res.Addrs(c.ctx, c.helo, true, true)
	switch {
	case err != nil:
		c.add("helo", title, checkWarn, "could not look it up: "+err.Error()+".", "", "")
	case slices.Contains(addrs, ip):
		c.add("helo", title, checkOK, "resolves to "+ip.String()+".", "", "")
	case hst == resolver.Found:
		var s []string
		for _, a := range addrs {
			s = append(s, a.String())
		}
		c.add("helo", title, checkWarn, "resolves to "+strings.Join(s, " ")+", not to "+ip.String()+": receivers that check HELO log it as forged.", "", c.helo+". IN "+addrType(ip)+" "+ip.String())
	default:
		c.add("helo", title, checkFail, "does not resolve: receivers that check HELO refuse it.", "", c.helo+". IN "+addrType(ip)+" "+ip.String())
	}
}

func addrType(ip netip.Addr) string {
	if ip.Is4() {
		return "A"
	}
	return "AAAA"
}

// validHostName: at least two labels of letters, digits, hyphens (and
// underscores, which real HELO names carry).
func validHostName(name string) bool {
	labels := strings.Split(name, ".")
	if len(labels) < 2 || len(name) > 253 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			ch := l[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// ---- MX ----

func (c *checker) checkMX() {
	mxs, st, err := c.res.MXs(c.ctx, c.domain)
	switch {
	case err != nil:
		c.add("mx", "MX", checkWarn, "could not look it up: "+err.Error()+".", "", "")
		return
	case st == resolver.NXDomain:
		c.add("mx", "MX", checkFail, c.domain+" does not exist: receivers refuse it as a sender domain.", "", "")
		return
	case st == resolver.NoData:
		c.add("mx", "MX", checkWarn, "no MX record: bounces and replies go to the domain's address, and receivers that check sender domains may refuse it.", "", c.domain+". IN MX 10 mail."+c.domain+".")
		return
	case len(mxs) == 1 && mxs[0].Host == ".":
		c.add("mx", "MX", checkFail, "null MX (RFC 7505): the domain says it takes no mail, and receivers refuse it as a sender (RFC 7505 §4.2).", "", "")
		return
	}
	var list, broken []string
	for _, mx := range mxs[:min(len(mxs), 10)] {
		host := strings.TrimSuffix(mx.Host, ".")
		list = append(list, fmt.Sprintf("%d %s", mx.Pref, host))
		addrs, _, err := c.res.Addrs(c.ctx, host, true, true)
		if err == nil && len(addrs) == 0 {
			broken = append(broken, host)
		}
	}
	switch {
	case len(broken) == len(list):
		c.add("mx", "MX", checkFail, strings.Join(list, ", ")+": no MX host has an address.", "", "")
	case len(broken) > 0:
		c.add("mx", "MX", checkWarn, strings.Join(list, ", ")+"; without an address: "+strings.Join(broken, ", ")+".", "", "")
	default:
		c.add("mx", "MX", checkOK, strings.Join(list, ", ")+".", "", "")
	}
}

// ---- output ----

func printCheckReport(w io.Writer, rep checkReport) {
	head := "vouch check " + rep.Domain
	var ctx []string
	if rep.IP != "" {
		ctx = append(ctx, "client "+rep.IP)
	}
	if rep.HELO != "" {
		ctx = append(ctx, "HELO "+rep.HELO)
	}
	if len(ctx) > 0 {
		head += " (" + strings.Join(ctx, ", ") + ")"
	}
	fmt.Fprintln(w, head)
	if rep.IP == "" {
		fmt.Fprintln(w, "  no -ip: the SPF evaluation, PTR and HELO are not checked")
	}
	fmt.Fprintln(w)
	warns, fails := 0, 0
	for _, it := range rep.Items {
		sym := "✓"
		switch it.Status {
		case checkWarn:
			sym = "!"
			warns++
		case checkFail:
			sym = "✗"
			fails++
		}
		fmt.Fprintf(w, "%s %s: %s\n", sym, it.Title, it.Message)
		if it.Found != "" {
			fmt.Fprintf(w, "    found:   %s\n", it.Found)
		}
		if it.Publish != "" {
			fmt.Fprintf(w, "    publish: %s\n", it.Publish)
		}
	}
	fmt.Fprintln(w)
	plural := func(n int, what string) string {
		if n == 1 {
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", n, what)
	}
	switch {
	case fails > 0:
		fmt.Fprintf(w, "result: %s, %s\n", plural(fails, "failure"), plural(warns, "warning"))
	case warns > 0:
		fmt.Fprintf(w, "result: %s\n", plural(warns, "warning"))
	default:
		fmt.Fprintln(w, "result: all good")
	}
}
