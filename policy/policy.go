// Package policy screens inbound SMTP clients: the PTR, HELO and MAIL
// lookups (checks.go gathers the facts) and the one function that turns
// them into a decision (Decide, below). It knows nothing about the milter
// wire; the milter package feeds it and sends the reply it returns.
package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"vouch/internal/iprev"
	"vouch/internal/smtpreply"
	"vouch/whitelist"
)

// Check names one of the three checks.
type Check string

const (
	PTR  Check = "ptr"
	HELO Check = "helo"
	Mail Check = "mail"
)

// Checks lists the checks in the order they are reported.
var Checks = []Check{PTR, HELO, Mail}

// Outcome is what a check found. The failing outcomes each have an action.
type Outcome string

const (
	Pass      Outcome = "pass"
	Exempt    Outcome = "exempt"  // a whitelist entry matched
	Skipped   Outcome = "skipped" // check disabled, or nothing to check (null sender)
	NoRecord  Outcome = "no_record"
	NoMatch   Outcome = "no_match"
	Invalid   Outcome = "invalid"
	NotFound  Outcome = "not_found"
	NoMX      Outcome = "no_mx"
	NullMX    Outcome = "null_mx"
	Forged    Outcome = "forged"
	TempError Outcome = "temp_error"
)

// Outcomes lists the failing outcomes of each check, in reporting order.
var Outcomes = map[Check][]Outcome{
	PTR:  {NoRecord, NoMatch, TempError},
	HELO: {Invalid, NotFound, Forged, TempError},
	Mail: {NotFound, NoMX, NullMX, Forged, TempError},
}

// Action is what to do about an outcome. They are ordered by severity:
// when several checks fail, the most severe action wins.
type Action int

const (
	Accept Action = iota
	Log
	Tempfail
	TempfailClose
	Reject
	RejectClose
)

var actionNames = []string{"accept", "log", "tempfail", "tempfail_close", "reject", "reject_close"}

func (a Action) String() string { return actionNames[a] }

// ParseAction reads an action name from the configuration.
func ParseAction(s string) (Action, error) {
	if i := slices.Index(actionNames, s); i >= 0 {
		return Action(i), nil
	}
	return 0, fmt.Errorf("unknown action %q (want one of %v)", s, actionNames)
}

// Mode is trial (rejects become tempfails) or enforce.
type Mode string

const (
	Trial   Mode = "trial"
	Enforce Mode = "enforce"
)

// Rule is the configured handling of one outcome.
type Rule struct {
	Action Action
	Text   string // reply text; "" means the default text
}

// CheckConfig configures one check.
type CheckConfig struct {
	Enabled bool
	Rules   map[Outcome]Rule
}

// Config configures the screen.
type Config struct {
	Mode        Mode
	Budget      time.Duration // all DNS lookups of one decision
	MaxPTRNames int
	Checks      map[Check]CheckConfig
}

// Validate reports every misconfigured outcome and action.
func (c *Config) Validate() []error {
	var errs []error
	if c.Mode != Trial && c.Mode != Enforce {
		errs = append(errs, fmt.Errorf("screen.mode: %q is neither trial nor enforce", c.Mode))
	}
	for check, cc := range c.Checks {
		for o, r := range cc.Rules {
			if !slices.Contains(Outcomes[check], o) {
				errs = append(errs, fmt.Errorf("screen.%s: %s has no outcome %q (it has %v)", check, check, o, Outcomes[check]))
			}
			// RFC-wise a DNS failure says nothing about the client: it may
			// be deferred or, if the admin says so, accepted with a log line,
			// never rejected and never silently accepted.
			if o == TempError && r.Action != Tempfail && r.Action != TempfailClose && r.Action != Log {
				errs = append(errs, fmt.Errorf("screen.%s.temp_error: %s is not allowed (tempfail, tempfail_close or log)", check, r.Action))
			}
		}
	}
	return errs
}

// Input is what the MTA told us about the client and the transaction.
type Input struct {
	IP            netip.Addr
	HELO          string
	Sender        string // MAIL FROM address without <>; "" for the null sender
	Internal      bool   // an internal host: not screened
	Authenticated bool   // SMTP AUTH succeeded: not screened
}

// Result is what one check found, with the DNS answers it used.
type Result struct {
	Check Check
	// Outcomes that hold (usually one; a sender domain can have both no_mx
	// and forged). Empty with Undetermined empty means pass.
	Outcomes []Outcome
	// Outcomes a temporary DNS failure kept us from ruling out.
	Undetermined []Outcome
	Exempt       *whitelist.Entry
	Skipped      bool
	Evidence     []string     // "PTR 192.0.2.1: mail.example.com.", ...
	PTRNames     []string     // the PTR check's names, for whitelist matching
	IPRev        iprev.Status // the PTR check's RFC 8601 result, for Authentication-Results; "" if no lookup was made
	TempErr      error
}

// Summary is the result as one outcome word for logs.
func (r Result) Summary() Outcome {
	switch {
	case r.Skipped:
		return Skipped
	case r.Exempt != nil:
		return Exempt
	case len(r.Outcomes) > 0:
		return r.Outcomes[0]
	case len(r.Undetermined) > 0:
		return TempError
	}
	return Pass
}

// Verdict is the handling of one check's result.
type Verdict struct {
	Result
	Outcome Outcome // the outcome that set Action
	Action  Action  // configured action (before trial mode)
}

// Decision is the screen's answer for one MAIL FROM.
type Decision struct {
	Action     Action           // what to do now (after trial mode)
	Configured Action           // what the configuration asks for
	Reply      *smtpreply.Reply // the SMTP reply for tempfail/reject actions
	Trial      bool             // a reject was turned into a tempfail ("would reject")
	Cause      Check            // the check that set the action ("" if none)
	Verdicts   []Verdict
	IPRev      string // RFC 8601 iprev result: pass, fail, permerror, temperror; "" if not checked
	Exemption  string // "internal" or "authenticated" when not screened
}

// Decide is the one place that turns check results into an action and a
// reply. It does no I/O.
//
// For each check the most severe action among its outcomes applies. An
// outcome a DNS failure left undetermined counts as temp_error, but only
// if its own action is stronger than log: if the admin would only log a
// forged HELO, a timeout while checking for one does not defer mail. The
// most severe action over all checks decides; in trial mode rejects become
// the matching tempfails.
func Decide(cfg *Config, in Input, results []Result) Decision {
	switch {
	case in.Internal:
		return Decision{Action: Accept, Exemption: "internal"}
	case in.Authenticated:
		return Decision{Action: Accept, Exemption: "authenticated"}
	}
	d := Decision{Action: Accept}
	var cause *Verdict
	for _, r := range results {
		v := Verdict{Result: r, Outcome: r.Summary(), Action: Accept}
		if r.Check == PTR {
			d.IPRev = string(r.IPRev)
		}
		if !r.Skipped && r.Exempt == nil {
			rules := cfg.Checks[r.Check].Rules
			for _, o := range r.Outcomes {
				if a := rules[o].Action; a > v.Action {
					v.Action, v.Outcome = a, o
				}
			}
			onTemp, ok := rules[TempError]
			if !ok {
				onTemp.Action = Tempfail
			}
			for _, o := range r.Undetermined {
				if rules[o].Action > Log && onTemp.Action > v.Action {
					v.Action, v.Outcome = onTemp.Action, TempError
				}
			}
			if len(r.Outcomes) == 0 && len(r.Undetermined) > 0 && v.Action == Accept {
				// Nothing stronger than log hung on the failed lookups:
				// accept, and say so in the log.
				v.Action, v.Outcome = Log, TempError
			}
		}
		d.Verdicts = append(d.Verdicts, v)
		if cause == nil || v.Action > cause.Action {
			cause = &d.Verdicts[len(d.Verdicts)-1]
		}
	}
	if cause == nil || cause.Action <= Log {
		if cause != nil {
			d.Action, d.Configured = cause.Action, cause.Action
		}
		return d
	}
	d.Cause = cause.Check
	d.Configured = cause.Action
	d.Action = cause.Action
	reply := replyFor(cfg, cause.Check, cause.Outcome, cause.Action, in)
	if cfg.Mode == Trial && (d.Action == Reject || d.Action == RejectClose) {
		d.Trial = true
		d.Action -= Reject - Tempfail // reject → tempfail, reject_close → tempfail_close
		reply = reply.Softened()
	}
	d.Reply = &reply
	return d
}
