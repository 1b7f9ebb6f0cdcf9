// Package doctor checks how an MTA is wired to vouch: whether Postfix (or
// Sendmail) hands every message to vouch's socket as each of its services
// sees the path, whether the milter settings and timeouts suit vouch, the
// hygiene that keeps a mail server off blocklists, and a live signing
// self-test. It reports ✓/!/✗ items with the fix for each, as `vouch check`
// does for DNS.
package doctor

import (
	"context"
	"fmt"
	"time"

	"vouch/internal/config"
	"vouch/internal/domaincheck"
	"vouch/internal/resolver"
	"vouch/internal/sockaddr"
	"vouch/signer"
)

// Item statuses, as vouch check's.
const (
	OK   = domaincheck.OK
	Warn = domaincheck.Warn
	Fail = domaincheck.Fail
)

// Item is one line of the report.
type Item struct {
	Check   string `json:"check"` // milters, socket, settings, timeouts, internal_hosts, relay, submission, tls, selftest, sendmail
	Title   string `json:"title"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // what to change, as a config line or command where possible
}

// Report is the whole result; Exit is 0 all good, 1 warnings, 2 failures.
type Report struct {
	Config     string `json:"config"`
	Postfix    string `json:"postfix_config,omitempty"`
	SendmailCF string `json:"sendmail_cf,omitempty"`
	Items      []Item `json:"items"`
	Result     string `json:"result"` // ok, warnings, failures
	Exit       int    `json:"exit"`
}

// Options say what to check.
type Options struct {
	Config     *config.Config
	Signer     signer.Config // the config's [signing] as the signer takes it (daemon.SignerConfig), for the self-test
	Postconf   string        // the postconf binary; "" skips Postfix
	PostfixDir string        // postconf -c DIR; "" for postconf's default
	SendmailCF string        // sendmail.cf or .mc with INPUT_MAIL_FILTER; "" skips Sendmail
	SelfTest   bool          // send a message through vouch's socket per signing domain
	Resolver   *resolver.Resolver
	Timeout    time.Duration // for the live checks (default 30 s)
}

type doctor struct {
	opts      Options
	cfg       *config.Config
	addr      sockaddr.Address
	listening bool
	items     []Item
}

func (d *doctor) add(check, title, status, message, fix string) {
	d.items = append(d.items, Item{Check: check, Title: title, Status: status, Message: message, Fix: fix})
}

// Run runs every check Options ask for.
func Run(ctx context.Context, opts Options) Report {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	d := &doctor{opts: opts, cfg: opts.Config}
	rep := Report{Config: opts.Config.Name(), SendmailCF: opts.SendmailCF}
	var err error
	if d.addr, err = sockaddr.Parse(d.cfg.Listen); err != nil {
		d.add("socket", "vouch's socket", Fail, err.Error(), `listen = "unix:/var/spool/postfix/vouch/vouch.sock"`)
	} else {
		d.checkListening()
	}
	if opts.Postconf != "" {
		rep.Postfix = opts.PostfixDir
		if rep.Postfix == "" {
			rep.Postfix = "(postconf's default)"
		}
		pf, err := ReadPostfix(opts.Postconf, opts.PostfixDir)
		if err != nil {
			d.add("postfix", "Postfix configuration", Fail, "cannot read it: "+err.Error(), "give its directory with -postfix-config DIR (Zimbra: -postconf /opt/zimbra/common/sbin/postconf -postfix-config /opt/zimbra/common/conf)")
		} else {
			d.checkPostfix(pf)
		}
	}
	if opts.SendmailCF != "" {
		d.checkSendmail(opts.SendmailCF)
	}
	if opts.SelfTest && d.listening {
		d.selfTest(ctx)
	}
	rep.Items = d.items
	statuses := make([]string, len(d.items))
	for i, it := range d.items {
		statuses[i] = it.Status
	}
	rep.Result, rep.Exit = domaincheck.Verdict(statuses)
	return rep
}

func (d *doctor) checkPostfix(pf *Postfix) {
	d.checkMilters(pf)
	d.checkMilterSettings(pf)
	d.checkTimeouts(pf)
	d.checkInternalHosts(pf)
	d.checkRelay(pf)
	d.checkSubmission(pf)
	d.checkTLS(pf)
}

// seconds reads a Postfix time value ("30s", "5m", "1h", "300": seconds).
func seconds(v string) (time.Duration, error) {
	if v == "" {
		return 0, fmt.Errorf("empty")
	}
	unit := time.Second
	switch v[len(v)-1] {
	case 's':
		v = v[:len(v)-1]
	case 'm':
		unit, v = time.Minute, v[:len(v)-1]
	case 'h':
		unit, v = time.Hour, v[:len(v)-1]
	case 'd':
		unit, v = 24*time.Hour, v[:len(v)-1]
	case 'w':
		unit, v = 7*24*time.Hour, v[:len(v)-1]
	}
	var n int64
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil {
		return 0, fmt.Errorf("%q is not a time", v)
	}
	return time.Duration(n) * unit, nil
}
