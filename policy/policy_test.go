package policy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"vouch/internal/iprev"
	"vouch/whitelist"
)

// testConfig is the embedded default: ptr no_record reject, no_match log;
// helo invalid log, not_found reject, forged log; mail not_found reject,
// no_mx accept, null_mx reject, forged log; temp_error tempfail.
func testConfig(mode Mode) *Config {
	rules := func(m map[Outcome]Action) CheckConfig {
		cc := CheckConfig{Enabled: true, Rules: map[Outcome]Rule{}}
		for o, a := range m {
			cc.Rules[o] = Rule{Action: a}
		}
		return cc
	}
	return &Config{
		Mode:        mode,
		Budget:      2 * time.Second,
		MaxPTRNames: 10,
		Checks: map[Check]CheckConfig{
			PTR:  rules(map[Outcome]Action{NoRecord: Reject, NoMatch: Log, TempError: Tempfail}),
			HELO: rules(map[Outcome]Action{Invalid: Log, NotFound: Reject, Forged: Log, TempError: Tempfail}),
			Mail: rules(map[Outcome]Action{NotFound: Reject, NoMX: Accept, NullMX: Reject, Forged: Log, TempError: Tempfail}),
		},
	}
}

var testInput = Input{IP: netip.MustParseAddr("192.0.2.1"), HELO: "mail.example.test", Sender: "user@example.test"}

// enhanced is the subject.detail each outcome's reply must carry.
var enhanced = map[Check]map[Outcome]string{
	PTR:  {NoRecord: "7.25", NoMatch: "7.25", TempError: "4.3"},
	HELO: {Invalid: "7.1", NotFound: "7.1", Forged: "7.1", TempError: "4.3"},
	Mail: {NotFound: "1.8", NoMX: "1.8", NullMX: "7.27", Forged: "7.1", TempError: "4.3"},
}

// TestDecideEveryOutcomeActionMode runs every outcome of every check with
// every action it may have, in both modes, and checks the action taken and
// the exact reply code.
func TestDecideEveryOutcomeActionMode(t *testing.T) {
	type want struct {
		action Action
		code   int // 0: no reply
		trial  bool
	}
	expect := func(o Outcome, a Action, mode Mode) want {
		tempCode := 450
		if o == TempError {
			tempCode = 451
		}
		switch a {
		case Accept, Log:
			return want{a, 0, false}
		case Tempfail:
			return want{Tempfail, tempCode, false}
		case TempfailClose:
			return want{TempfailClose, 421, false}
		case Reject:
			if mode == Trial {
				return want{Tempfail, 450, true}
			}
			return want{Reject, 550, false}
		case RejectClose:
			if mode == Trial {
				return want{TempfailClose, 421, true}
			}
			return want{RejectClose, 521, false}
		}
		panic("unreachable")
	}
	for _, check := range Checks {
		for _, o := range Outcomes[check] {
			for a := Accept; a <= RejectClose; a++ {
				if o == TempError && a != Log && a != Tempfail && a != TempfailClose {
					continue // refused by Validate, tested there
				}
				for _, mode := range []Mode{Trial, Enforce} {
					name := fmt.Sprintf("%s/%s/%s/%s", check, o, a, mode)
					t.Run(name, func(t *testing.T) {
						cfg := testConfig(mode)
						cfg.Checks[check].Rules[o] = Rule{Action: a}
						r := Result{Check: check, Outcomes: []Outcome{o}}
						if o == TempError {
							// A failed lookup that could have found a
							// rejectable outcome.
							r = Result{Check: check, Outcomes: nil, Undetermined: Outcomes[check][:1]}
							cfg.Checks[check].Rules[Outcomes[check][0]] = Rule{Action: Reject}
						}
						d := Decide(cfg, testInput, []Result{r})
						w := expect(o, a, mode)
						if d.Action != w.action || d.Trial != w.trial {
							t.Fatalf("action %s trial %v, want %s trial %v", d.Action, d.Trial, w.action, w.trial)
						}
						if w.code == 0 {
							if d.Reply != nil {
								t.Fatalf("unexpected reply %v", d.Reply)
							}
							return
						}
						if d.Reply == nil || d.Reply.Code != w.code {
							t.Fatalf("reply %v, want code %d", d.Reply, w.code)
						}
						wantEnh := fmt.Sprintf("%d.%s", w.code/100, enhanced[check][o])
						if d.Reply.EnhancedCode() != wantEnh {
							t.Fatalf("enhanced %s, want %s", d.Reply.EnhancedCode(), wantEnh)
						}
						if d.Cause != check {
							t.Fatalf("cause %q, want %q", d.Cause, check)
						}
					})
				}
			}
		}
	}
}

func TestTempErrorNeverRejects(t *testing.T) {
	for _, mode := range []Mode{Trial, Enforce} {
		for _, check := range Checks {
			cfg := testConfig(mode)
			for o := range cfg.Checks[check].Rules {
				if o != TempError {
					cfg.Checks[check].Rules[o] = Rule{Action: RejectClose}
				}
			}
			r := Result{Check: check, Undetermined: Outcomes[check]}
			d := Decide(cfg, testInput, []Result{r})
			if d.Reply == nil || d.Reply.Code != 451 || d.Reply.EnhancedCode() != "4.4.3" {
				t.Errorf("%s %s: got %v, want 451 4.4.3", mode, check, d.Reply)
			}
		}
	}
}

func TestUndeterminedOutcomeOnlyLoggedDoesNotDefer(t *testing.T) {
	// PTR found, but the forward lookup failed: only no_match (log) was
	// left open, so the mail is accepted with iprev=temperror.
	d := Decide(testConfig(Enforce), testInput, []Result{{Check: PTR, Undetermined: []Outcome{NoMatch}, IPRev: iprev.TempError, Evidence: []string{"x"}}})
	if d.Action != Log || d.Reply != nil || d.IPRev != "temperror" {
		t.Fatalf("got %s %v iprev=%s", d.Action, d.Reply, d.IPRev)
	}
}

func TestMostSevereCheckWins(t *testing.T) {
	cfg := testConfig(Enforce)
	results := []Result{
		{Check: PTR, Undetermined: []Outcome{NoRecord, NoMatch}}, // tempfail
		{Check: HELO, Outcomes: []Outcome{Forged}},               // log
		{Check: Mail, Outcomes: []Outcome{NullMX}},               // reject
	}
	d := Decide(cfg, testInput, results)
	if d.Action != Reject || d.Cause != Mail || d.Reply.String() != "550 5.7.27 Sender address rejected: domain example.test does not accept mail (null MX)" {
		t.Fatalf("got %s from %s: %v", d.Action, d.Cause, d.Reply)
	}
	if len(d.Verdicts) != 3 || d.Verdicts[0].Outcome != TempError || d.Verdicts[1].Action != Log {
		t.Fatalf("verdicts %+v", d.Verdicts)
	}
}

func TestSeveralOutcomesOfOneCheck(t *testing.T) {
	cfg := testConfig(Enforce)
	cfg.Checks[Mail].Rules[Forged] = Rule{Action: Reject}
	d := Decide(cfg, testInput, []Result{{Check: Mail, Outcomes: []Outcome{NoMX, Forged}}})
	if d.Action != Reject || d.Verdicts[0].Outcome != Forged {
		t.Fatalf("got %s %s", d.Action, d.Verdicts[0].Outcome)
	}
}

func TestExemptions(t *testing.T) {
	cfg := testConfig(Enforce)
	failing := []Result{{Check: PTR, Outcomes: []Outcome{NoRecord}}}
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"internal", Input{IP: testInput.IP, Internal: true}, "internal"},
		{"authenticated", Input{IP: testInput.IP, Authenticated: true}, "authenticated"},
	}
	for _, tc := range tests {
		d := Decide(cfg, tc.in, failing)
		if d.Action != Accept || d.Exemption != tc.want || d.Reply != nil {
			t.Errorf("%s: got %s %q", tc.name, d.Action, d.Exemption)
		}
	}
	// A whitelisted check is ignored whatever it found.
	d := Decide(cfg, testInput, []Result{{Check: PTR, Outcomes: []Outcome{NoRecord}, Exempt: &whitelistEntry}})
	if d.Action != Accept || d.Verdicts[0].Outcome != Exempt {
		t.Fatalf("whitelisted: %s %s", d.Action, d.Verdicts[0].Outcome)
	}
}

func TestReplyClassAlwaysFollowsCode(t *testing.T) {
	for _, check := range Checks {
		for _, o := range Outcomes[check] {
			for a := Tempfail; a <= RejectClose; a++ {
				for _, mode := range []Mode{Trial, Enforce} {
					cfg := testConfig(mode)
					r := replyFor(cfg, check, o, a, testInput)
					if mode == Trial && a >= Reject {
						r = r.Softened()
					}
					if !strings.HasPrefix(r.EnhancedCode(), fmt.Sprint(r.Code/100)+".") {
						t.Errorf("%s %s %s: %s", check, o, a, r)
					}
				}
			}
		}
	}
}

func TestReplyTextIsConfigurableAndSanitized(t *testing.T) {
	cfg := testConfig(Enforce)
	cfg.Checks[HELO].Rules[NotFound] = Rule{Action: Reject, Text: "Go away %helo% from %ip%"}
	in := testInput
	in.HELO = "bad\r\nname\x00"
	d := Decide(cfg, in, []Result{{Check: HELO, Outcomes: []Outcome{NotFound}}})
	if got := d.Reply.String(); got != "550 5.7.1 Go away bad??name? from 192.0.2.1" {
		t.Fatalf("got %q", got)
	}
}

func TestValidate(t *testing.T) {
	cfg := testConfig("maybe")
	cfg.Checks[PTR].Rules[TempError] = Rule{Action: Reject}
	cfg.Checks[PTR].Rules[NullMX] = Rule{Action: Reject}
	cfg.Checks[HELO].Rules[TempError] = Rule{Action: Accept}
	errs := cfg.Validate()
	want := []string{`screen.mode: "maybe"`, "screen.ptr.temp_error: reject", `ptr has no outcome "null_mx"`, "screen.helo.temp_error: accept"}
	joined := fmt.Sprint(errs)
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing %q in %s", w, joined)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d: %s", len(errs), len(want), joined)
	}
	if errs := testConfig(Trial).Validate(); len(errs) != 0 {
		t.Errorf("default config: %v", errs)
	}
}

var whitelistEntry = whitelist.Entry{File: "ReverseXcpt.dat", Line: 3, Text: "192.0.2.*"}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestPendingResultBeatsExpiredBudget: a check that finished is used even
// when the budget ran out before it was asked for (Mail runs the MAIL
// check before it waits for PTR and HELO); a plain select would drop it
// half of the time.
func TestPendingResultBeatsExpiredBudget(t *testing.T) {
	p := &pending{done: make(chan struct{}), res: Result{Check: PTR, Outcomes: []Outcome{NoMatch}}}
	close(p.done)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 {
		if r := p.wait(ctx, PTR); r.TempErr != nil || len(r.Outcomes) != 1 {
			t.Fatalf("got %+v, want the finished result", r)
		}
	}
}
