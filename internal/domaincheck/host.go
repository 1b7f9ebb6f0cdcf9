package domaincheck

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"

	"vouch/internal/iprev"
	"vouch/internal/mailtext"
	"vouch/internal/resolver"
)

// maxPTRNames is how many PTR names are tried, as the screen's default
// max_ptr_names.
const maxPTRNames = 10

// checkPTRAndHELO checks the sending address's reverse DNS as receivers
// do (iprev, RFC 8601 §3), then the HELO name: a host name that resolves
// to the address.
func (c *checker) checkPTRAndHELO() {
	ip := c.ip
	title := "PTR " + ip.String()
	arpa, _ := mdns.ReverseAddr(ip.String())
	want := c.helo
	if want == "" {
		want = "mail." + c.domain
	}
	st, confirmed, names, _, err := iprev.Lookup(c.ctx, c.res, ip, maxPTRNames)
	confirmed = strings.TrimSuffix(confirmed, ".")
	shown := strings.TrimSuffix(strings.Join(names, " "), ".")
	switch {
	case st == iprev.Pass:
		c.add("ptr", title, OK, ip.String()+" → "+confirmed+" → "+ip.String()+" (forward-confirmed).", "", "")
	case st == iprev.PermError:
		c.add("ptr", title, Fail, "no PTR record: many receivers refuse mail from addresses without reverse DNS (ask whoever runs the reverse zone of "+ip.String()+").", "", arpa+" IN PTR "+want+".")
	case st == iprev.TempError && len(names) == 0:
		c.add("ptr", title, Warn, "could not look it up: "+err.Error()+".", "", "")
	case st == iprev.TempError:
		c.add("ptr", title, Warn, "PTR "+shown+", but its address lookup failed: "+err.Error()+".", "", "")
	default:
		first := strings.TrimSuffix(names[0], ".")
		c.add("ptr", title, Fail, "PTR "+shown+", but no PTR name resolves back to "+ip.String()+" (receivers see it as unverified).", "", first+". IN "+addrType(ip)+" "+ip.String())
	}
	if c.helo == "" && len(names) > 0 {
		c.helo = confirmed
		if c.helo == "" {
			c.helo = strings.TrimSuffix(names[0], ".")
		}
	}
	if c.helo == "" {
		return
	}
	title = "HELO " + c.helo
	if !mailtext.ValidDomain(c.helo) {
		c.add("helo", title, Fail, "not a fully qualified host name: receivers refuse or distrust it.", "", "")
		return
	}
	addrs, hst, err := c.res.Addrs(c.ctx, c.helo, true, true)
	switch {
	case err != nil:
		c.add("helo", title, Warn, "could not look it up: "+err.Error()+".", "", "")
	case slices.Contains(addrs, ip):
		c.add("helo", title, OK, "resolves to "+ip.String()+".", "", "")
	case hst == resolver.Found:
		var s []string
		for _, a := range addrs {
			s = append(s, a.String())
		}
		c.add("helo", title, Warn, "resolves to "+strings.Join(s, " ")+", not to "+ip.String()+": receivers that check HELO log it as forged.", "", c.helo+". IN "+addrType(ip)+" "+ip.String())
	default:
		c.add("helo", title, Fail, "does not resolve: receivers that check HELO refuse it.", "", c.helo+". IN "+addrType(ip)+" "+ip.String())
	}
}

func addrType(ip netip.Addr) string {
	if ip.Is4() {
		return "A"
	}
	return "AAAA"
}

// checkMX checks that the domain takes mail (RFC 7505 null MX, MX hosts
// with addresses): receivers that check sender domains refuse it otherwise.
func (c *checker) checkMX() {
	mxs, st, err := c.res.MXs(c.ctx, c.domain)
	switch {
	case err != nil:
		c.add("mx", "MX", Warn, "could not look it up: "+err.Error()+".", "", "")
		return
	case st == resolver.NXDomain:
		c.add("mx", "MX", Fail, c.domain+" does not exist: receivers refuse it as a sender domain.", "", "")
		return
	case st == resolver.NoData:
		c.add("mx", "MX", Warn, "no MX record: bounces and replies go to the domain's address, and receivers that check sender domains may refuse it.", "", c.domain+". IN MX 10 mail."+c.domain+".")
		return
	case len(mxs) == 1 && mxs[0].Host == ".":
		c.add("mx", "MX", Fail, "null MX (RFC 7505): the domain says it takes no mail, and receivers refuse it as a sender (RFC 7505 §4.2).", "", "")
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
		c.add("mx", "MX", Fail, strings.Join(list, ", ")+": no MX host has an address.", "", "")
	case len(broken) > 0:
		c.add("mx", "MX", Warn, strings.Join(list, ", ")+"; without an address: "+strings.Join(broken, ", ")+".", "", "")
	default:
		c.add("mx", "MX", OK, strings.Join(list, ", ")+".", "", "")
	}
}
