package doctor

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"vouch/signer"
)

// checkMilterSettings: milter_default_action and milter_protocol.
func (d *doctor) checkMilterSettings(pf *Postfix) {
	switch a := pf.Main["milter_default_action"]; a {
	case "accept":
		d.add("settings", "milter_default_action = accept", OK, "while vouch is stopped or cannot be reached, Postfix delivers mail unsigned and unscreened (receivers that enforce DMARC p=reject refuse it); tempfail would defer it instead.", "")
	case "tempfail":
		d.add("settings", "milter_default_action = tempfail", OK, "while vouch is stopped or cannot be reached, Postfix defers mail (4xx) and retries; nothing leaves unsigned.", "")
	default:
		d.add("settings", "milter_default_action = "+a, Warn, fmt.Sprintf("%q: while vouch is stopped or restarting, mail is refused or held instead of delayed.", a), "main.cf: milter_default_action = tempfail (or accept)")
	}
	if p := pf.Main["milter_protocol"]; p != "6" {
		d.add("settings", "milter_protocol", Fail, fmt.Sprintf("milter_protocol = %s: vouch negotiates protocol 6 features (header leading space, macro lists); with an older protocol the negotiation fails and every message gets milter_default_action.", p), "main.cf: milter_protocol = 6")
	} else {
		d.add("settings", "milter_protocol", OK, "6.", "")
	}
}

// checkTimeouts: vouch answers before Postfix gives up on it. Postfix
// waits milter_command_timeout for connect/HELO/MAIL/RCPT replies (where
// the screen runs) and milter_content_timeout for the end of the message
// (verification, LDAP key lookups); vouch waits limits.read_timeout for
// Postfix's next command, which must outlast a slow SMTP client.
func (d *doctor) checkTimeouts(pf *Postfix) {
	cmd, err1 := seconds(pf.Main["milter_command_timeout"])
	content, err2 := seconds(pf.Main["milter_content_timeout"])
	smtpd, err3 := seconds(pf.Main["smtpd_timeout"])
	if err1 != nil || err2 != nil || err3 != nil {
		d.add("timeouts", "milter timeouts", Warn, "cannot read milter_command_timeout, milter_content_timeout or smtpd_timeout.", "")
		return
	}
	c := d.cfg
	dnsLookup := c.DNS.Timeout * time.Duration(max(1, c.DNS.Attempts))
	var bad []string
	if c.Screen.Enabled && c.Screen.Budget >= cmd {
		bad = append(bad, fmt.Sprintf("screen.budget %v ≥ milter_command_timeout %v: set screen.budget = \"%v\"", c.Screen.Budget, cmd, cmd*2/3))
	}
	if c.Screen.Enabled && dnsLookup >= cmd {
		bad = append(bad, fmt.Sprintf("one DNS lookup may take dns.timeout × dns.attempts = %v ≥ milter_command_timeout %v", dnsLookup, cmd))
	}
	if c.Verify.Enabled && c.Verify.Budget >= content {
		bad = append(bad, fmt.Sprintf("verify.budget %v ≥ milter_content_timeout %v", c.Verify.Budget, content))
	}
	if ldap := 2 * c.Signing.LDAPTimeout; strings.HasPrefix(c.Signing.KeyTable, "ldap") && ldap >= content {
		bad = append(bad, fmt.Sprintf("an LDAP key lookup may take 2 × signing.ldap_timeout = %v ≥ milter_content_timeout %v", ldap, content))
	}
	if len(bad) > 0 {
		d.add("timeouts", "milter timeouts", Fail, "Postfix gives up on vouch before vouch answers, and applies milter_default_action: "+strings.Join(bad, "; ")+".", "lower vouch's budgets below Postfix's milter timeouts (or raise those in main.cf)")
	} else {
		d.add("timeouts", "milter timeouts", OK, fmt.Sprintf("vouch answers within Postfix's limits (screen.budget %v < milter_command_timeout %v; verify.budget %v < milter_content_timeout %v).", c.Screen.Budget, cmd, c.Verify.Budget, content), "")
	}
	if c.Limits.ReadTimeout <= smtpd {
		d.add("timeouts", "limits.read_timeout", Warn, fmt.Sprintf("limits.read_timeout %v ≤ smtpd_timeout %v: vouch may drop the session of a slow SMTP client that Postfix still waits for.", c.Limits.ReadTimeout, smtpd), fmt.Sprintf("limits.read_timeout = \"%v\"", smtpd*2))
	}
}

// checkInternalHosts: the clients Postfix relays for (mynetworks) are
// ones vouch signs for, and vouch trusts nothing broader than meant.
func (d *doctor) checkInternalHosts(pf *Postfix) {
	entries := append([]string(nil), d.cfg.Signing.InternalHosts...)
	hosts, err := signer.ParseHostEntries("signing.internal_hosts", entries)
	if err == nil && d.cfg.Signing.InternalHostsFile != "" {
		err = hosts.AddFile(d.cfg.Signing.InternalHostsFile)
		entries = append(entries, fileEntries(d.cfg.Signing.InternalHostsFile)...)
	}
	if err != nil {
		d.add("internal_hosts", "internal hosts", Fail, err.Error(), "fix the entry (vouch serve -check names it)")
		return
	}
	var broad []string
	for _, e := range entries {
		if p, ok := tooBroad(e); ok {
			broad = append(broad, p)
		}
	}
	if len(broad) > 0 {
		d.add("internal_hosts", "internal hosts", Fail, fmt.Sprintf("vouch signs mail from %s: a large part of the internet, so forgers there get your signature.", strings.Join(broad, ", ")), "list only your own networks in signing.internal_hosts")
	}
	var missing, unchecked []string
	for _, e := range list(pf.Main["mynetworks"]) {
		p, err := parseNet(e)
		if err != nil {
			unchecked = append(unchecked, e)
			continue
		}
		if p, ok := tooBroad(e); ok {
			d.add("relay", "mynetworks", Fail, fmt.Sprintf("mynetworks contains %s: Postfix relays for a large part of the internet (an open relay).", p), "main.cf: mynetworks = 127.0.0.0/8 [::1]/128 and your own networks")
		}
		first, last := p.Masked().Addr(), lastAddr(p)
		if first.Unmap().IsLoopback() {
			// 127.0.0.0/8 and friends: vouch trusting 127.0.0.1 and ::1
			// is what counts (nothing else connects from loopback).
			first, last = netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1")
		}
		if ok1, _ := hosts.Match("", first); !ok1 {
			missing = append(missing, e)
		} else if ok2, _ := hosts.Match("", last); !ok2 {
			missing = append(missing, e)
		}
	}
	switch {
	case len(missing) > 0:
		d.add("internal_hosts", "internal hosts cover mynetworks", Warn, fmt.Sprintf("Postfix relays for %s (mynetworks) but vouch does not sign their mail.", strings.Join(missing, ", ")), fmt.Sprintf("signing.internal_hosts: add %q", missing))
	case len(broad) == 0:
		d.add("internal_hosts", "internal hosts cover mynetworks", OK, fmt.Sprintf("every network in mynetworks is in vouch's internal hosts (%s).", strings.Join(d.cfg.Signing.InternalHosts, ", ")), "")
	}
	if len(unchecked) > 0 {
		d.add("internal_hosts", "mynetworks tables", Warn, fmt.Sprintf("mynetworks entries %s are tables or names; not compared with vouch's internal hosts.", strings.Join(unchecked, ", ")), "compare them with signing.internal_hosts yourself")
	}
}

// fileEntries reads an InternalHosts file's entries for the breadth check
// (the signer parses it for real).
func fileEntries(path string) []string {
	path = strings.TrimPrefix(path, "file:")
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// parseNet reads "192.0.2.0/24", "[::1]/128", "10.1.2.3" or "[::1]".
func parseNet(e string) (netip.Prefix, error) {
	e = strings.Replace(strings.TrimPrefix(e, "["), "]", "", 1)
	if strings.Contains(e, "/") {
		return netip.ParsePrefix(e)
	}
	ip, err := netip.ParseAddr(e)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()), nil
}

// tooBroad: a network of /8 or wider (IPv4; /16 for IPv6) that is not
// private or loopback, such as 0.0.0.0/0 or 25.0.0.0/8.
func tooBroad(e string) (string, bool) {
	if strings.HasPrefix(e, "!") {
		return "", false
	}
	p, err := parseNet(e)
	if err != nil {
		return "", false
	}
	p = p.Masked()
	limit := 8
	if p.Addr().Is6() {
		limit = 16
	}
	if p.Bits() > limit {
		return "", false
	}
	a := p.Addr()
	if p.Bits() > 0 && (a.IsPrivate() || a.IsLoopback()) {
		return "", false
	}
	return p.String(), true
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// restrictionVerdict walks a restriction list as Postfix does for one
// unauthorized client and recipient: "closed" when it ends in a reject
// for such a client, "open" at an unconditional permit, "" when it falls
// off the end (Postfix then goes on to the next list, or permits).
// authOnly reports whether only permit_sasl_authenticated and the like
// come before the reject.
func restrictionVerdict(v string) (verdict string, authOnly bool) {
	authOnly = true
	for _, r := range list(v) {
		switch r {
		case "reject_unauth_destination", "defer_unauth_destination":
			return "closed", false
		case "reject", "defer", "defer_if_permit":
			return "closed", authOnly
		case "permit":
			return "open", false
		case "permit_sasl_authenticated", "permit_tls_clientcerts", "permit_tls_all_clientcerts", "permit_mynetworks":
		default:
			authOnly = false
		}
	}
	return "", false
}

// publicSMTPD lists the smtpd services that listen beyond loopback.
func publicSMTPD(pf *Postfix) []*Service {
	var out []*Service
	for i := range pf.Services {
		s := &pf.Services[i]
		if s.Command == "smtpd" && (s.Type == "inet" || s.Type == "pass") && !loopbackService(s) {
			out = append(out, s)
		}
	}
	return out
}

// checkRelay: every public smtpd refuses to relay for unauthorized clients.
func (d *doctor) checkRelay(pf *Postfix) {
	for _, s := range publicSMTPD(pf) {
		relay, _ := restrictionVerdict(pf.Get(s, "smtpd_relay_restrictions"))
		rcpt, _ := restrictionVerdict(pf.Get(s, "smtpd_recipient_restrictions"))
		if relay == "closed" || relay == "" && rcpt == "closed" {
			d.add("relay", "no open relay: "+s.ID(), OK, "unauthorized clients cannot relay (reject_unauth_destination).", "")
			continue
		}
		d.add("relay", "no open relay: "+s.ID(), Fail, fmt.Sprintf("%s relays for anyone: neither smtpd_relay_restrictions (%q) nor smtpd_recipient_restrictions (%q) rejects unauthorized destinations.", s.ID(), pf.Get(s, "smtpd_relay_restrictions"), pf.Get(s, "smtpd_recipient_restrictions")),
			"smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination")
	}
}

// checkSubmission: submission (587) and submissions/smtps (465) offer
// SMTP AUTH and accept nobody without it.
func (d *doctor) checkSubmission(pf *Postfix) {
	found := false
	for _, s := range publicSMTPD(pf) {
		if !isSubmission(s.Name) {
			continue
		}
		found = true
		title := "SMTP AUTH on " + s.ID()
		if pf.Get(s, "smtpd_sasl_auth_enable") != "yes" {
			d.add("submission", title, Fail, s.ID()+" does not offer SMTP AUTH: users cannot log in, or it accepts them without.", fmt.Sprintf("master.cf, %s: -o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject", s.ID()))
			continue
		}
		required := false
		for _, param := range []string{"smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions", "smtpd_relay_restrictions", "smtpd_recipient_restrictions"} {
			if v, auth := restrictionVerdict(pf.Get(s, param)); v == "closed" && auth {
				required = true
			}
		}
		if required {
			d.add("submission", title, OK, s.ID()+" offers SMTP AUTH and refuses clients that do not log in.", "")
		} else {
			d.add("submission", title, Fail, s.ID()+" offers SMTP AUTH but also takes mail from clients that do not log in.", fmt.Sprintf("master.cf, %s: -o smtpd_client_restrictions=permit_sasl_authenticated,reject", s.ID()))
		}
	}
	if !found {
		d.add("submission", "submission service", OK, "no submission (587) or submissions (465) service in master.cf.", "")
	}
}

func isSubmission(name string) bool {
	port := name[strings.LastIndex(name, ":")+1:]
	switch port {
	case "submission", "submissions", "smtps", "587", "465":
		return true
	}
	return false
}

// checkTLS: every public smtpd offers STARTTLS (or is TLS-wrapped) with
// a certificate.
func (d *doctor) checkTLS(pf *Postfix) {
	for _, s := range publicSMTPD(pf) {
		level := pf.Get(s, "smtpd_tls_security_level")
		wrapped := pf.Get(s, "smtpd_tls_wrappermode") == "yes"
		cert := pf.Get(s, "smtpd_tls_chain_files")
		if cert == "" {
			cert = pf.Get(s, "smtpd_tls_cert_file")
		}
		title := "TLS on " + s.ID()
		switch {
		case level != "may" && level != "encrypt" && !wrapped:
			d.add("tls", title, Warn, fmt.Sprintf("%s offers no TLS (smtpd_tls_security_level = %q): mail and passwords cross the network in clear, and receivers rate such servers down.", s.ID(), level), "main.cf: smtpd_tls_security_level = may, smtpd_tls_chain_files = /etc/ssl/private/mail.pem (key and certificate)")
		case cert == "":
			d.add("tls", title, Fail, s.ID()+" asks for TLS but has no certificate (smtpd_tls_chain_files, smtpd_tls_cert_file).", "main.cf: smtpd_tls_chain_files = /etc/ssl/private/mail.pem")
		default:
			var missing []string
			for _, f := range list(cert) {
				if _, err := os.Stat(f); err != nil {
					missing = append(missing, f)
				}
			}
			if len(missing) > 0 {
				d.add("tls", title, Fail, fmt.Sprintf("%s: certificate %s missing.", s.ID(), strings.Join(missing, ", ")), "point smtpd_tls_chain_files at an existing key and certificate")
			} else {
				d.add("tls", title, OK, fmt.Sprintf("TLS offered (%s), certificate %s.", orDefault(level, "wrapper mode"), cert), "")
			}
		}
	}
}
