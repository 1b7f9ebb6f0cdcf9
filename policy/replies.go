package policy

// defaultReplies are the permanent replies per outcome; tempfail actions
// send the same enhanced code as 450 4.x.x. RFC 7372 gives 5.7.25 for
// failed reverse DNS, RFC 7505 5.7.27 for a null MX sender, RFC 3463 5.1.8
// for a bad sender's system address.
var defaultReplies = map[Check]map[Outcome]Reply{
	PTR: {
		NoRecord: {550, "7.25", "Reverse DNS validation failed: no PTR record for %ip%"},
		NoMatch:  {550, "7.25", "Reverse DNS validation failed: no PTR name of %ip% resolves back to it"},
	},
	HELO: {
		Invalid:  {550, "7.1", "HELO name %helo% is not a valid host name or your address literal"},
		NotFound: {550, "7.1", "HELO name %helo% does not resolve"},
		Forged:   {550, "7.1", "HELO name %helo% does not match your address %ip%"},
	},
	Mail: {
		NotFound: {550, "1.8", "Sender address rejected: domain %domain% not found"},
		NoMX:     {550, "1.8", "Sender address rejected: domain %domain% has no MX record"},
		NullMX:   {550, "7.27", "Sender address rejected: domain %domain% does not accept mail (null MX)"},
		Forged:   {550, "7.1", "Sender address rejected: %ip% is not a mail host of %domain%"},
	},
}

// A DNS failure is always 451 4.4.3 (RFC 3463: directory server failure).
var tempErrorReply = Reply{451, "4.3", "Temporary DNS failure while checking your %check%, try again later"}

// replyFor builds the reply an action sends for an outcome of a check.
func replyFor(cfg *Config, check Check, o Outcome, a Action, in Input) Reply {
	var r Reply
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
