package policy

import (
	"fmt"
	"slices"
	"strings"

	"vouch/internal/mailtext"
	"vouch/internal/smtpreply"
	"vouch/internal/verify"
)

// MessageAction is what to do with an inbound message at end of data,
// after DKIM, SPF and DMARC. They are ordered by severity: when several
// results call for an action, the most severe wins.
type MessageAction int

const (
	MsgAccept     MessageAction = iota // deliver (the Authentication-Results header is added)
	MsgQuarantine                      // deliver to the MTA's hold queue (milter quarantine)
	MsgTempfail                        // 4xx: the sender retries
	MsgReject                          // 5xx
)

var messageActionNames = []string{"accept", "quarantine", "tempfail", "reject"}

func (a MessageAction) String() string {
	if a < 0 || int(a) >= len(messageActionNames) {
		return fmt.Sprintf("action(%d)", int(a))
	}
	return messageActionNames[a]
}

// ParseMessageAction reads a [verify] action name from the configuration.
func ParseMessageAction(s string) (MessageAction, error) {
	if i := slices.Index(messageActionNames, s); i >= 0 {
		return MessageAction(i), nil
	}
	return 0, fmt.Errorf("unknown action %q (want one of %v)", s, messageActionNames)
}

// VerifyConfig configures what is done with DKIM, SPF and DMARC results of
// inbound mail. The zero value of every action is accept: the defaults
// only add the Authentication-Results header.
type VerifyConfig struct {
	Enabled bool
	// DMARCReject applies when DMARC fails and the domain's policy (after
	// pct=) is reject; DMARCQuarantine when it is quarantine. A p=none
	// failure is never acted on.
	DMARCReject     MessageAction
	DMARCQuarantine MessageAction
	// SPFFail applies to spf=fail (not softfail).
	SPFFail MessageAction
	// DKIMFail applies when no signature passes and one is bad (dkim=fail;
	// OpenDKIM's On-BadSignature). No key, revoked or weak keys are not
	// bad signatures: they are never acted on.
	DKIMFail MessageAction
	// DKIMFailWhenDMARCPasses applies DKIMFail even when DMARC passes,
	// as OpenDKIM's On-BadSignature does (it knows no DMARC).
	DKIMFailWhenDMARCPasses bool
	// TempError applies when a DNS failure leaves open a result whose
	// action is not accept: accept or tempfail, never reject.
	TempError MessageAction
}

// DefaultVerifyConfig: verify and add the header, enforce nothing; if
// enforcement is turned on, DNS failures defer.
func DefaultVerifyConfig() VerifyConfig {
	return VerifyConfig{Enabled: true, TempError: MsgTempfail}
}

// Validate reports every action that is not allowed where it is set.
func (c *VerifyConfig) Validate() []error {
	var errs []error
	for _, f := range []struct {
		key string
		a   MessageAction
	}{{"dmarc_reject", c.DMARCReject}, {"dmarc_quarantine", c.DMARCQuarantine}, {"spf_fail", c.SPFFail}, {"dkim_fail", c.DKIMFail}, {"temp_error", c.TempError}} {
		if f.a < MsgAccept || f.a > MsgReject {
			errs = append(errs, fmt.Errorf("verify.%s: invalid action %d", f.key, f.a))
		}
	}
	// A DNS failure says nothing about the message: defer it or let it
	// through, never reject or quarantine it.
	if c.TempError != MsgAccept && c.TempError != MsgTempfail {
		errs = append(errs, fmt.Errorf("verify.temp_error: %s is not allowed (accept or tempfail)", c.TempError))
	}
	return errs
}

// MessageDecision is the end-of-message answer.
type MessageDecision struct {
	Action     MessageAction    // what to do now (after trial mode)
	Configured MessageAction    // what the configuration asks for
	Reply      *smtpreply.Reply // for tempfail and reject
	// Quarantine: hold the message (the milter calls
	// Modifier.Quarantine(QuarantineReason)) and accept it.
	Quarantine       bool
	QuarantineReason string
	Trial            bool   // a reject was turned into a tempfail ("would reject")
	Cause            string // "dmarc", "spf", "dkim" or "temperror"; "" when accepted
	Reason           string // one line for the log: which result, which domain
	// AddHeader: add the Authentication-Results header
	// (verify.FormatAuthResults); false only when verification is off.
	AddHeader   bool
	Allowlisted bool // the sender is allow-listed: nothing was enforced
}

// Replies for message results. RFC 7372: X.7.20 no passing DKIM
// signature, X.7.23 SPF validation failed. DMARC rejects use 5.7.1 (RFC
// 7489 §10.3 suggests it). Temporary DNS failures are 451 4.4.3, as in the
// screen.
var (
	dmarcReply = smtpreply.Reply{Code: 550, Enhanced: "7.1", Text: "Message rejected per the DMARC policy of %domain%"}
	spfReply   = smtpreply.Reply{Code: 550, Enhanced: "7.23", Text: "SPF validation failed for %domain%"}
	dkimReply  = smtpreply.Reply{Code: 550, Enhanced: "7.20", Text: "No valid DKIM signature found"}
	dnsReply   = smtpreply.Reply{Code: 451, Enhanced: "4.3", Text: "Temporary DNS failure while verifying your message, try again later"}
)

// DecideMessage is the one place that turns a message's authentication
// results into an action. It does no I/O.
//
//   - Nothing is enforced for an allow-listed sender (domain or IP), and
//     nothing by default: the header is always added when enabled.
//   - DMARC fail with disposition reject or quarantine (after pct=) takes
//     DMARCReject or DMARCQuarantine.
//   - When DMARC passes, SPF and DKIM failures are not acted on: the
//     message is authenticated for its From domain (a forwarded message
//     fails SPF, a mailing list footer breaks one signature while another
//     aligned one passes; RFC 7489 §10.1 warns about rejecting on SPF
//     before DMARC).
//   - spf=fail takes SPFFail; dkim=fail (no signature passes, one is bad)
//     takes DKIMFail, also when DMARC passes if DKIMFailWhenDMARCPasses
//     (OpenDKIM's On-BadSignature).
//   - A temperror counts only where its result could have been acted on:
//     a DMARC temperror if DMARC enforcement is on for the policy that
//     may apply, an SPF or DKIM temperror if SPFFail or DKIMFail is not
//     accept. It then takes TempError (tempfail or accept), never reject.
//   - The most severe action wins; in trial mode a reject becomes the
//     matching tempfail (550 5.7.1 → 450 4.7.1). Quarantine is not a
//     refusal and is kept in trial mode.
func DecideMessage(cfg *VerifyConfig, r verify.Results, allowlisted bool, mode Mode) MessageDecision {
	if cfg == nil || !cfg.Enabled {
		return MessageDecision{Action: MsgAccept}
	}
	d := MessageDecision{Action: MsgAccept, AddHeader: true}
	if allowlisted {
		d.Allowlisted = true
		return d
	}
	type candidate struct {
		cause  string
		action MessageAction
		reply  smtpreply.Reply
		reason string // for the log
		domain string // %domain% in the reply
	}
	var best *candidate
	consider := func(c candidate) {
		if c.action > MsgAccept && (best == nil || c.action > best.action) {
			best = &c
		}
	}
	temp := func(what string) {
		consider(candidate{"temperror", cfg.TempError, dnsReply, what, ""})
	}

	dm := r.DMARC
	switch dm.Status {
	case verify.Fail:
		reason := fmt.Sprintf("DMARC fail for %s (p=%s, disposition %s)", dm.FromDomain, dm.Policy, dm.Disposition)
		switch dm.Disposition {
		case verify.DispReject:
			consider(candidate{"dmarc", cfg.DMARCReject, dmarcReply, reason, dm.FromDomain})
		case verify.DispQuarantine:
			consider(candidate{"dmarc", cfg.DMARCQuarantine, dmarcReply, reason, dm.FromDomain})
		}
	case verify.TempError:
		// The policy is known when the record was found but a key or SPF
		// lookup failed; unknown when the record lookup itself failed.
		// Unknown, or reject (which pct= may soften to quarantine): either.
		open := max(cfg.DMARCReject, cfg.DMARCQuarantine)
		switch dm.Policy {
		case verify.DispQuarantine:
			open = cfg.DMARCQuarantine
		case verify.DispNone:
			open = MsgAccept
		}
		if open > MsgAccept {
			temp(fmt.Sprintf("DMARC temperror for %s: %s", dm.FromDomain, dm.Reason))
		}
	}
	if dm.Status != verify.Pass {
		switch r.SPF.Status {
		case verify.Fail:
			consider(candidate{"spf", cfg.SPFFail, spfReply, fmt.Sprintf("SPF fail for %s (%s)", r.SPF.Domain, mailtext.Printable(r.SPF.Reason)), r.SPF.Domain})
		case verify.TempError:
			if cfg.SPFFail > MsgAccept {
				temp(fmt.Sprintf("SPF temperror for %s: %s", r.SPF.Domain, mailtext.Printable(r.SPF.Reason)))
			}
		}
	}
	if dm.Status != verify.Pass || cfg.DKIMFailWhenDMARCPasses {
		switch r.DKIMStatus() {
		case verify.Fail:
			consider(candidate{"dkim", cfg.DKIMFail, dkimReply, "DKIM fail: " + dkimFailures(r.DKIM), ""})
		case verify.TempError:
			if cfg.DKIMFail > MsgAccept {
				temp("DKIM temperror: " + dkimFailures(r.DKIM))
			}
		}
	}
	if best == nil {
		return d
	}

	d.Cause, d.Reason = best.cause, best.reason
	d.Configured, d.Action = best.action, best.action
	reply := best.reply
	// The domain comes from the sender: printable ASCII only.
	reply.Text = mailtext.Printable(strings.ReplaceAll(reply.Text, "%domain%", best.domain))
	switch best.action {
	case MsgQuarantine:
		d.Quarantine = true
		d.QuarantineReason = mailtext.Printable(best.reason)
	case MsgTempfail:
		if best.cause != "temperror" {
			reply.Code = 450 // same enhanced code, 4.x.x
		}
		d.Reply = &reply
	case MsgReject:
		if mode == Trial {
			d.Trial = true
			d.Action = MsgTempfail
			reply = reply.Softened()
		}
		d.Reply = &reply
	}
	return d
}

// dkimFailures lists the signatures that did not pass, for the log.
func dkimFailures(rs []verify.DKIMResult) string {
	s := ""
	for _, r := range rs {
		if r.Status == verify.Pass {
			continue
		}
		if s != "" {
			s += ", "
		}
		// d=, s= and the reason come from the message: truncated.
		s += fmt.Sprintf("d=%s s=%s %s (%s)", mailtext.Printable(r.Domain), mailtext.Printable(r.Selector), r.Status, mailtext.Printable(r.Reason))
	}
	return s
}
