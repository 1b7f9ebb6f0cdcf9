package doctor

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"

	"vouch/internal/sockaddr"
)

// sendmailFilter is one milter Sendmail knows: from a .mc
// INPUT_MAIL_FILTER(`name', `S=..., F=...') or a .cf "Xname, S=..., F=..."
// line, with whether InputMailFilters uses it.
type sendmailFilter struct {
	name, socket, flags string
	used                bool
	line                int
}

var (
	mcFilter = regexp.MustCompile("^\\s*INPUT_MAIL_FILTER\\(\\s*`?([^',]+)'?\\s*,\\s*`?([^']*)'?\\s*\\)")
	cfFilter = regexp.MustCompile(`^X([^,\s]+)\s*,\s*(.*)$`)
	cfInput  = regexp.MustCompile(`^O\s+InputMailFilters\s*=\s*(.*)$`)
)

// parseSendmail reads the milter definitions of a sendmail.mc or
// sendmail.cf.
func parseSendmail(text string) []sendmailFilter {
	var filters []sendmailFilter
	var input []string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		var name, equates string
		used := false
		if m := mcFilter.FindStringSubmatch(line); m != nil {
			name, equates, used = m[1], m[2], true
		} else if m := cfFilter.FindStringSubmatch(line); m != nil {
			name, equates = m[1], m[2]
		} else if m := cfInput.FindStringSubmatch(line); m != nil {
			input = append(input, list(m[1])...)
			continue
		} else {
			continue
		}
		f := sendmailFilter{name: strings.TrimSpace(name), used: used, line: i + 1}
		for _, eq := range strings.Split(equates, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(eq), "=")
			switch strings.TrimSpace(k) {
			case "S":
				f.socket = strings.TrimSpace(v)
			case "F":
				f.flags = strings.TrimSpace(v)
			}
		}
		filters = append(filters, f)
	}
	for i := range filters {
		for _, n := range input {
			if n == filters[i].name {
				filters[i].used = true
			}
		}
	}
	return filters
}

// checkSendmail: an INPUT_MAIL_FILTER names vouch's socket and says what
// Sendmail does while vouch is down.
func (d *doctor) checkSendmail(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		d.add("sendmail", "Sendmail milter", Fail, err.Error(), "give sendmail.mc or sendmail.cf with -sendmail-cf FILE")
		return
	}
	_, target := dialTarget(d.addr)
	fix := fmt.Sprintf("sendmail.mc: INPUT_MAIL_FILTER(`vouch', `S=%s, F=T, T=S:30s;R:30s;E:5m')dnl, then rebuild sendmail.cf", sendmailSocket(d.addr))
	for _, f := range parseSendmail(string(data)) {
		a, err := sockaddr.Parse(f.socket)
		if err != nil || !sameAddress(a, d.addr) {
			continue
		}
		where := fmt.Sprintf("%s:%d", path, f.line)
		if !f.used {
			d.add("sendmail", "Sendmail milter", Fail, fmt.Sprintf("%s defines milter %s on vouch's socket, but InputMailFilters does not use it.", where, f.name), "O InputMailFilters="+f.name+" (INPUT_MAIL_FILTER in the .mc does it)")
			return
		}
		d.add("sendmail", "Sendmail milter", OK, fmt.Sprintf("%s: milter %s reaches vouch at %s.", where, f.name, target), "")
		switch {
		case strings.Contains(f.flags, "T"):
			d.add("sendmail", "Sendmail milter F=", OK, "F=T: while vouch is down, Sendmail defers mail (4xx); nothing leaves unsigned.", "")
		case strings.Contains(f.flags, "R"):
			d.add("sendmail", "Sendmail milter F=", Warn, "F=R: while vouch is down, Sendmail rejects mail permanently.", "F=T (defer) instead")
		default:
			d.add("sendmail", "Sendmail milter F=", OK, "no F=T or F=R: while vouch is down, Sendmail passes mail unsigned and unscreened; F=T would defer it instead.", "")
		}
		return
	}
	d.add("sendmail", "Sendmail milter", Fail, fmt.Sprintf("no INPUT_MAIL_FILTER in %s names vouch's socket (%s): Sendmail does not hand mail to vouch.", path, d.cfg.Listen), fix)
}

// sameAddress: a client of a reaches a listener on b.
func sameAddress(a, b sockaddr.Address) bool {
	if a.Network == "unix" || b.Network == "unix" {
		return a.Network == b.Network && a.Addr == b.Addr
	}
	ah, ap, _ := net.SplitHostPort(a.Addr)
	bh, bp, _ := net.SplitHostPort(b.Addr)
	return ap == bp && sameHost(ah, bh)
}

// sendmailSocket spells vouch's socket for Sendmail's S= equate.
func sendmailSocket(a sockaddr.Address) string {
	if a.Network == "unix" {
		return "local:" + a.Addr
	}
	_, addr := dialTarget(a)
	host, port, _ := net.SplitHostPort(addr)
	if a.Network == "tcp6" {
		return "inet6:" + port + "@" + host
	}
	return "inet:" + port + "@" + host
}
