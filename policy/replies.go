package policy

import "vouch/internal/smtpreply"

// defaultReplies are the permanent replies per outcome; tempfail actions
// send the same enhanced code as 450 4.x.x. RFC 7372 gives 5.7.25 for
// failed reverse DNS, RFC 7505 5.7.27 for a null MX sender, RFC 3463 5.1.8
// for a bad sender's system address.
var defaultReplies = map[Check]map[Outcome]smtpreply.Reply{
	PTR: {
		NoRecord: {Code: 550, Enhanced: "7.25", Text: "Reverse DNS validation failed: no PTR record for %ip%"},
		NoMatch:  {Code: 550, Enhanced: "7.25", Text: "Reverse DNS validation failed: no PTR name of %ip% resolves back to it"},
	},
	HELO: {
		Invalid:  {Code: 550, Enhanced: "7.1", Text: "HELO name %helo% is not a valid host name or your address literal"},
		NotFound: {Code: 550, Enhanced: "7.1", Text: "HELO name %helo% does not resolve"},
		Forged:   {Code: 550, Enhanced: "7.1", Text: "HELO name %helo% does not match your address %ip%"},
	},
	Mail: {
		NotFound: {Code: 550, Enhanced: "1.8", Text: "Sender address rejected: domain %domain% not found"},
		NoMX:     {Code: 550, Enhanced: "1.8", Text: "Sender address rejected: domain %domain% has no MX record"},
		NullMX:   {Code: 550, Enhanced: "7.27", Text: "Sender address rejected: domain %domain% does not accept mail (null MX)"},
		Forged:   {Code: 550, Enhanced: "7.1", Text: "Sender address rejected: %ip% is not a mail host of %domain%"},
	},
}

// A DNS failure is always 451 4.4.3 (RFC 3463: directory server failure).
var tempErrorReply = smtpreply.Reply{Code: 451, Enhanced: "4.3", Text: "Temporary DNS failure while checking your %check%, try again later"}

// replyFor builds the reply an action sends for an outcome of a check.
func replyFor(cfg *Config, check Check, o Outcome, a Action, in Input) smtpreply.Reply {
	var r smtpreply.Reply
	if o == TempError {
		r = tempErrorReply
	} else {
		r = defaultReplies[check][o]
	}
	if text := cfg.Checks[check].Rules[o].Text; text != "" {
		r.Text = text
	}
	switch a {
	case Tempfail:
		if o != TempError {
			r.Code = 450
		}
	case TempfailClose:
		r.Code = 421 // Postfix and Sendmail close the session after a 421
	case RejectClose:
		r.Code = 521 // and after a 521 (RFC 7504)
	}
	r.Text = expand(r.Text, check, in)
	return r
}
