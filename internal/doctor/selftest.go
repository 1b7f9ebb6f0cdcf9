package doctor

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/mtaclient"
	"vouch/internal/verify"
	"vouch/signer"
)

// selfTest sends, per signing key, one message through vouch's socket the
// way Postfix does, from a trusted origin (an SMTP-authenticated user on
// 127.0.0.1), and verifies the signature vouch adds against the key
// published in DNS, or against the local key when DNS cannot be reached.
func (d *doctor) selfTest(ctx context.Context) {
	// Only the domains and public halves are needed here; whether the key
	// files are safe is serve -check's business (and root may be running
	// this on keys owned by the vouch user).
	sc := d.opts.Signer
	sc.RequireSafeKeys = false
	sg, _, err := signer.New(sc)
	if err != nil {
		d.add("selftest", "self-test", Fail, "cannot load the signing keys: "+err.Error(), "vouch serve -check names the problem")
		return
	}
	keys := sg.Keys()
	sg.Close()
	local := map[string]crypto.Signer{}
	var domains []string
	for _, k := range keys {
		if k.Domain == "%" {
			continue
		}
		name := k.Selector + "._domainkey." + k.Domain
		if _, dup := local[name]; !dup && !containsDomain(domains, k.Domain) {
			domains = append(domains, k.Domain)
		}
		local[name] = k.Signer
	}
	if len(domains) == 0 {
		d.add("selftest", "self-test", Warn, "no signing domain with a key loaded at start (keys per message or in LDAP are not listed): nothing to test.", "")
		return
	}
	network, addr := dialTarget(d.addr)
	for _, domain := range domains {
		d.selfTestDomain(ctx, network, addr, domain, local)
	}
}

func containsDomain(ds []string, d string) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

const selfTestBody = "vouch doctor: a message signed through the milter socket, then verified.\r\n"

func (d *doctor) selfTestDomain(ctx context.Context, network, addr, domain string, local map[string]crypto.Signer) {
	title := "self-test " + domain
	from := "vouch-doctor@" + domain
	msg := &mtaclient.Message{
		ClientName: "localhost", ClientIP: "127.0.0.1", HELO: "localhost",
		From: from, Rcpts: []string{"postmaster@" + domain}, AuthUser: "vouch-doctor",
		MTAName: "vouch-doctor.invalid",
		Headers: []mtaclient.Header{
			{Name: "From", Value: " <" + from + ">"},
			{Name: "To", Value: " <postmaster@" + domain + ">"},
			{Name: "Subject", Value: " vouch doctor self-test"},
			{Name: "Date", Value: " " + time.Now().Format(time.RFC1123Z)},
			{Name: "Message-ID", Value: fmt.Sprintf(" <doctor.%d@%s>", time.Now().UnixNano(), domain)},
		},
		Body: strings.NewReader(selfTestBody),
	}
	conn := mtaclient.NewConn(mtaclient.NewPostfixClient(network, addr))
	res, err := conn.Send(msg)
	conn.Close()
	if err != nil {
		d.add("selftest", title, Fail, fmt.Sprintf("the milter session on %s failed: %v.", addr, err), "look at vouch's log")
		return
	}
	if res.Stage != "" {
		d.add("selftest", title, Fail, fmt.Sprintf("vouch answered %s at %s for an authenticated sender.", res.Action.SMTPReply, res.Stage), "look at vouch's log for the reason")
		return
	}
	signed := mtaclient.Render(res.Headers, []byte(selfTestBody))
	if !bytes.Contains(signed, []byte("DKIM-Signature:")) {
		d.add("selftest", title, Fail, "vouch accepted the message but did not sign it.", "look at vouch's log (msg=message ... reason=...)")
		return
	}
	lookup := verify.LookupTXT(d.opts.Resolver)
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		d.add("selftest", title, Fail, "cannot read the signed message: "+err.Error(), "")
		return
	}
	var okDNS, okLocal, bad []string
	var dnsErr error
	selectors := selectorsOf(res.Headers)
	for _, v := range vs {
		sel := strings.TrimSpace(selectors[v.Domain])
		switch {
		case v.Err == nil:
			okDNS = append(okDNS, sel)
		case dkim.IsTempFail(v.Err) || isDNSTrouble(v.Err):
			dnsErr = v.Err
			if verifyLocal(signed, local) {
				okLocal = append(okLocal, sel)
			} else {
				bad = append(bad, sel+" does not verify even against the local key")
			}
		default:
			bad = append(bad, fmt.Sprintf("%s: %v", sel, v.Err))
		}
	}
	switch {
	case len(bad) > 0:
		d.add("selftest", title, Fail, "signed, but the signature does not verify against the published key: "+strings.Join(bad, "; ")+".", "publish the record from genkey's SELECTOR.txt (vouch testkey shows which key is published)")
	case len(okLocal) > 0:
		d.add("selftest", title, Warn, fmt.Sprintf("signed (%s); DNS could not be reached (%v), so the signature was verified against the local key only.", strings.Join(append(okDNS, okLocal...), ", "), dnsErr), "run vouch doctor where DNS answers, or vouch testkey")
	default:
		d.add("selftest", title, OK, fmt.Sprintf("a message from %s through %s was signed (%s) and verifies against the key published in DNS.", from, addr, strings.Join(okDNS, ", ")), "")
	}
}

// isDNSTrouble: the key lookup failed for a reason other than an answer
// (no resolver reachable, timeout).
func isDNSTrouble(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTimeout || de.IsTemporary) || strings.Contains(err.Error(), "timeout")
}

// verifyLocal verifies every signature against the local keys.
func verifyLocal(msg []byte, local map[string]crypto.Signer) bool {
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		k, ok := local[strings.TrimSuffix(name, ".")]
		if !ok {
			return nil, &net.DNSError{Err: "no local key", Name: name, IsNotFound: true}
		}
		alg, p, err := signer.PublicRecord(k.Public())
		if err != nil {
			return nil, err
		}
		return []string{"v=DKIM1; k=" + alg + "; p=" + p}, nil
	}})
	if err != nil || len(vs) == 0 {
		return false
	}
	for _, v := range vs {
		if v.Err != nil {
			return false
		}
	}
	return true
}

// selectorsOf lists the s= of each DKIM-Signature header by its d= (one
// d= per domain in the self-test; go-msgauth's Verification has no s=).
func selectorsOf(headers []mtaclient.Header) map[string]string {
	out := map[string]string{}
	for _, h := range headers {
		if !strings.EqualFold(h.Name, "DKIM-Signature") {
			continue
		}
		tags := map[string]string{}
		for _, tag := range strings.Split(h.Value, ";") {
			if k, v, ok := strings.Cut(tag, "="); ok {
				tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
			}
		}
		out[tags["d"]] += " s=" + tags["s"]
	}
	return out
}
