// Package domaincheck is the logic of `vouch check`: is a sending domain
// set up so that its mail passes SPF, DKIM and DMARC at the receiver, and
// does the sending address have forward-confirmed reverse DNS and a HELO
// name that resolves to it? It asks DNS through the shared resolver and
// reuses what the daemon itself judges with (verify's SPF evaluation and
// DMARC discovery, iprev, mailtext's domain syntax, signer's key records),
// so the report agrees with what vouch and receivers will do. Each finding
// is an Item with a status (ok, warn, fail), one sentence, the record as
// found and the record to publish instead; cmd/vouch prints them. A
// resolver that does not answer at all is one failure, not a warning per
// lookup.
package domaincheck

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"

	"vouch/internal/resolver"
)

// Item statuses.
const (
	OK   = "ok"
	Warn = "warn"
	Fail = "fail"
)

// Item is one line of the report.
type Item struct {
	Check   string `json:"check"` // dns, spf, dkim, dmarc, ptr, helo, mx
	Title   string `json:"title"`
	Status  string `json:"status"`            // ok, warn, fail
	Message string `json:"message"`           // one sentence
	Found   string `json:"found,omitempty"`   // the record as published
	Publish string `json:"publish,omitempty"` // the record to publish instead
}

// Report is the whole report (vouch check -json prints it as is).
type Report struct {
	Domain string `json:"domain"`
	IP     string `json:"ip,omitempty"`
	HELO   string `json:"helo,omitempty"`
	Items  []Item `json:"items"`
	Result string `json:"result"` // ok, warnings, failures
	Exit   int    `json:"exit"`   // 0 ok, 1 warnings, 2 failures
}

// Key is a private key the configuration signs with.
type Key struct {
	Domain, Selector string // Domain "%" for a KeyTable row signing for the From domain
	Signer           crypto.Signer
	Source           string // where it is configured
}

// Options say what to check.
type Options struct {
	Domain   string     // the sending domain
	IP       netip.Addr // the address its mail leaves from; invalid: SPF evaluation, PTR and HELO are not checked
	HELO     string     // the HELO name; "" means the PTR name of IP
	Selector string     // check this selector only (also one the configuration does not have)
	Keys     []Key      // the configuration's keys
}

// checker holds what the checks share.
type checker struct {
	ctx      context.Context
	res      *resolver.Resolver
	domain   string
	ip       netip.Addr
	helo     string
	keys     []Key
	selector string
	items    []Item

	spfUsable   bool   // one SPF record that parses: SPF can pass for MAIL FROM @domain
	dkimAligned string // "d=... s=..." of a working key aligned with the domain
	dmarcADKIMs bool   // adkim=s
	dnsTrouble  bool   // an SPF or DKIM lookup failed: alignment cannot be judged
}

func (c *checker) add(check, title, status, message string, found, publish string) {
	c.items = append(c.items, Item{Check: check, Title: title, Status: status, Message: message, Found: found, Publish: publish})
}

// Run checks the domain. Only ctx ending early shortens the report.
func Run(ctx context.Context, res *resolver.Resolver, o Options) Report {
	c := &checker{ctx: ctx, res: res, domain: normName(o.Domain), ip: o.IP.Unmap(), helo: normName(o.HELO), keys: o.Keys, selector: o.Selector}
	if err := reachable(ctx, res); err != nil {
		// Every lookup would fail the same way: say it once.
		c.add("dns", "DNS", Fail, fmt.Sprintf("no DNS server answers (%s: %v): nothing could be checked; fix [dns] servers in the configuration, or the network, and run the check again.",
			strings.Join(res.Servers(), ", "), err), "", "")
	} else {
		c.checkSPF()
		c.checkDKIM()
		c.checkDMARC()
		if c.ip.IsValid() {
			c.checkPTRAndHELO()
		}
		c.checkMX()
	}
	rep := Report{Domain: c.domain, HELO: c.helo, Items: c.items, Result: "ok"}
	if c.ip.IsValid() {
		rep.IP = c.ip.String()
	}
	statuses := make([]string, len(c.items))
	for i, it := range c.items {
		statuses[i] = it.Status
	}
	rep.Result, rep.Exit = Verdict(statuses)
	return rep
}

// Verdict sums up item statuses as vouch check and vouch doctor report
// them: any fail is "failures" (exit 2), else any warn is "warnings"
// (exit 1), else "ok" (0).
func Verdict(statuses []string) (result string, exit int) {
	result = "ok"
	for _, s := range statuses {
		switch {
		case s == Fail:
			return "failures", 2
		case s == Warn:
			result, exit = "warnings", 1
		}
	}
	return result, exit
}

// reachable asks for the root's NS records, which every recursive
// resolver has. Any answer, even SERVFAIL or REFUSED, shows a server is
// there (the checks then report what each lookup got); only silence or a
// refused connection means none is.
func reachable(ctx context.Context, res *resolver.Resolver) error {
	_, err := res.Query(ctx, ".", mdns.TypeNS)
	var te *resolver.TempError
	if errors.As(err, &te) {
		if _, rcode := mdns.StringToRcode[te.Reason]; !rcode {
			return errors.New(te.Reason)
		}
	}
	return nil
}

func normName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }
