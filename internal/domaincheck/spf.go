package domaincheck

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"vouch/internal/resolver"
	"vouch/internal/verify"
)

// checkSPF checks the domain's SPF record (RFC 7208): one record, its
// syntax, the lookups it costs through includes and redirects, the all it
// ends in, and with -ip whether the evaluation (verify.CheckSPF, as the
// daemon does it) passes for that address.
func (c *checker) checkSPF() {
	txts, st, err := c.res.TXT(c.ctx, c.domain)
	if err != nil {
		c.add("spf", "SPF record", Warn, "could not look it up: "+err.Error()+".", "", "")
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
		c.add("spf", "SPF record", Fail, c.domain+" does not exist in DNS.", "", "")
		return
	case len(records) == 0:
		c.add("spf", "SPF record", Fail, "no SPF record: receivers cannot tell your servers from forgers.", "", c.domain+". IN TXT "+starter)
		return
	case len(records) > 1:
		c.add("spf", "SPF record", Fail, fmt.Sprintf("%d SPF records: receivers return permerror (RFC 7208 §4.5); merge them into one.", len(records)), strings.Join(records, " | "), "")
		return
	}
	record := records[0]
	w := &spfWalker{ctx: c.ctx, txt: c.res.TXT, seen: map[string]bool{c.domain: true}}
	all := w.walk(c.domain, record, 0)
	switch {
	case w.temp != "":
		c.add("spf", "SPF record", Warn, "could not follow it: "+w.temp+".", record, "")
		c.dnsTrouble = true
		return
	case len(w.errs) > 0:
		c.add("spf", "SPF record", Fail, w.errs[0]+": receivers return permerror.", record, "")
		return
	}
	c.spfUsable = w.lookups <= 10
	msg := "one record, it parses."
	status := OK
	if len(w.warns) > 0 {
		msg, status = "one record, it parses; "+strings.Join(w.warns, "; ")+".", Warn
	}
	c.add("spf", "SPF record", status, msg, record, "")

	switch {
	case w.lookups > 10:
		c.add("spf", "SPF lookups", Fail, fmt.Sprintf("%d DNS lookups, more than the 10 allowed: receivers return permerror (RFC 7208 §4.6.4); flatten includes into ip4:/ip6:.", w.lookups), "", "")
	case w.macros:
		c.add("spf", "SPF lookups", Warn, fmt.Sprintf("at least %d of 10 DNS lookups; terms with macros were not followed.", w.lookups), "", "")
	default:
		c.add("spf", "SPF lookups", OK, fmt.Sprintf("%d of 10 DNS lookups.", w.lookups), "", "")
	}

	switch all {
	case "-":
		c.add("spf", "SPF all", OK, "ends in -all: other hosts fail.", "", "")
	case "~":
		c.add("spf", "SPF all", Warn, "ends in ~all (softfail): other hosts are only suspicious; use -all once every sender is listed.", "", "")
	case "?":
		c.add("spf", "SPF all", Warn, "ends in ?all (neutral): the record protects nothing; end it in -all.", "", "")
	case "+":
		c.add("spf", "SPF all", Fail, "ends in +all: every host on the Internet may send for "+c.domain+"; end it in -all.", "", "")
	default:
		c.add("spf", "SPF all", Warn, "no all mechanism: other hosts get neutral; end it in -all.", "", "")
	}

	if c.ip.IsValid() {
		r := verify.CheckSPF(c.ctx, c.res, c.ip, c.helo, "postmaster@"+c.domain)
		switch r.Status {
		case verify.Pass:
			c.add("spf", "SPF for "+c.ip.String(), OK, c.ip.String()+" may send for "+c.domain+" (spf=pass).", "", "")
		case verify.TempError:
			c.add("spf", "SPF for "+c.ip.String(), Warn, "could not evaluate: "+r.Reason+".", "", "")
		default:
			c.add("spf", "SPF for "+c.ip.String(), Fail, fmt.Sprintf("%s is not authorized: spf=%s (%s).", c.ip, r.Status, r.Reason), "",
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
	txt     func(ctx context.Context, name string) ([]string, resolver.Status, error)
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
	txts, _, err := w.txt(w.ctx, target)
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
