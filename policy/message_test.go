package policy

import (
	"fmt"
	"strings"
	"testing"

	"vouch/internal/verify"
)

// Results builders: one mechanism set, the others silent.
func dmarcRes(st verify.Status, policy, disp verify.Disposition) verify.Results {
	return verify.Results{DMARC: verify.DMARCResult{Status: st, FromDomain: "example.com", Policy: policy, Disposition: disp, Reason: "x"}}
}

func spfRes(st verify.Status) verify.Results {
	return verify.Results{SPF: verify.SPFResult{Status: st, Identity: "mailfrom", Domain: "example.net", Sender: "u@example.net", Reason: "x"}}
}

func dkimRes(sts ...verify.Status) verify.Results {
	var r verify.Results
	for i, st := range sts {
		r.DKIM = append(r.DKIM, verify.DKIMResult{Status: st, Domain: "example.org", Selector: fmt.Sprint("s", i)})
	}
	return r
}

// TestDecideMessageEveryResultActionMode runs each mechanism's every
// result against every action of its setting, with either temp_error
// action, in both modes, allow-listed or not, and checks the action, the
// quarantine flag and the exact reply.
func TestDecideMessageEveryResultActionMode(t *testing.T) {
	type kind int
	const (
		ignored kind = iota // never acted on
		failing             // takes the mechanism's action
		temp                // takes temp_error if the mechanism's action is not accept
	)
	type variant struct {
		name string
		r    verify.Results
		kind kind
	}
	mechs := []struct {
		name     string
		set      func(*VerifyConfig, MessageAction)
		enhanced string // subject.detail of the failure reply
		variants []variant
	}{
		{"dmarc_reject", func(c *VerifyConfig, a MessageAction) { c.DMARCReject = a }, "7.1", []variant{
			{"pass", dmarcRes(verify.Pass, verify.DispReject, verify.DispNone), ignored},
			{"fail p=reject", dmarcRes(verify.Fail, verify.DispReject, verify.DispReject), failing},
			{"fail p=reject pct→quarantine", dmarcRes(verify.Fail, verify.DispReject, verify.DispQuarantine), ignored},
			{"fail p=none", dmarcRes(verify.Fail, verify.DispNone, verify.DispNone), ignored},
			{"none", dmarcRes(verify.None, "", ""), ignored},
			{"permerror", dmarcRes(verify.PermError, "", ""), ignored},
			{"temperror p=reject", dmarcRes(verify.TempError, verify.DispReject, verify.DispNone), temp},
			{"temperror no record yet", dmarcRes(verify.TempError, "", ""), temp},
			{"temperror p=quarantine", dmarcRes(verify.TempError, verify.DispQuarantine, verify.DispNone), ignored},
			{"temperror p=none", dmarcRes(verify.TempError, verify.DispNone, verify.DispNone), ignored},
			{"not checked", verify.Results{}, ignored},
		}},
		{"dmarc_quarantine", func(c *VerifyConfig, a MessageAction) { c.DMARCQuarantine = a }, "7.1", []variant{
			{"pass", dmarcRes(verify.Pass, verify.DispQuarantine, verify.DispNone), ignored},
			{"fail p=quarantine", dmarcRes(verify.Fail, verify.DispQuarantine, verify.DispQuarantine), failing},
			{"fail p=reject pct→quarantine", dmarcRes(verify.Fail, verify.DispReject, verify.DispQuarantine), failing},
			{"fail p=reject", dmarcRes(verify.Fail, verify.DispReject, verify.DispReject), ignored},
			{"fail p=quarantine pct→none", dmarcRes(verify.Fail, verify.DispQuarantine, verify.DispNone), ignored},
			{"temperror p=quarantine", dmarcRes(verify.TempError, verify.DispQuarantine, verify.DispNone), temp},
			{"temperror p=reject", dmarcRes(verify.TempError, verify.DispReject, verify.DispNone), temp},
			{"temperror no record yet", dmarcRes(verify.TempError, "", ""), temp},
			{"temperror p=none", dmarcRes(verify.TempError, verify.DispNone, verify.DispNone), ignored},
		}},
		{"spf_fail", func(c *VerifyConfig, a MessageAction) { c.SPFFail = a }, "7.23", []variant{
			{"pass", spfRes(verify.Pass), ignored},
			{"fail", spfRes(verify.Fail), failing},
			{"softfail", spfRes(verify.SoftFail), ignored},
			{"neutral", spfRes(verify.Neutral), ignored},
			{"none", spfRes(verify.None), ignored},
			{"permerror", spfRes(verify.PermError), ignored},
			{"temperror", spfRes(verify.TempError), temp},
			{"not checked", spfRes(""), ignored},
		}},
		{"dkim_fail", func(c *VerifyConfig, a MessageAction) { c.DKIMFail = a }, "7.20", []variant{
			{"unsigned", dkimRes(), ignored},
			{"pass", dkimRes(verify.Pass), ignored},
			{"fail", dkimRes(verify.Fail), failing},
			{"fail and pass", dkimRes(verify.Fail, verify.Pass), ignored},
			{"fail and temperror", dkimRes(verify.TempError, verify.Fail), failing},
			{"policy", dkimRes(verify.Policy), ignored},
			{"permerror", dkimRes(verify.PermError), ignored},
			{"neutral", dkimRes(verify.Neutral), ignored},
			{"temperror", dkimRes(verify.TempError), temp},
			{"temperror and permerror", dkimRes(verify.PermError, verify.TempError), temp},
			{"temperror and pass", dkimRes(verify.TempError, verify.Pass), ignored},
		}},
	}
	for _, m := range mechs {
		for _, v := range m.variants {
			for a := MsgAccept; a <= MsgReject; a++ {
				for _, onTemp := range []MessageAction{MsgAccept, MsgTempfail} {
					for _, mode := range []Mode{Trial, Enforce} {
						for _, allow := range []bool{false, true} {
							name := fmt.Sprintf("%s/%s/%s/temp_error=%s/%s/allowlisted=%v", m.name, v.name, a, onTemp, mode, allow)
							t.Run(name, func(t *testing.T) {
								cfg := &VerifyConfig{Enabled: true, TempError: onTemp}
								m.set(cfg, a)
								d := DecideMessage(cfg, v.r, allow, mode)
								if !d.AddHeader {
									t.Fatal("no header")
								}
								// What the decision must be.
								action, code, enh, trial := MsgAccept, 0, "", false
								switch {
								case allow:
								case v.kind == failing:
									action = a
									switch a {
									case MsgTempfail:
										code, enh = 450, "4."+m.enhanced
									case MsgReject:
										code, enh = 550, "5."+m.enhanced
										if mode == Trial {
											action, code, enh, trial = MsgTempfail, 450, "4."+m.enhanced, true
										}
									}
								case v.kind == temp && a != MsgAccept && onTemp == MsgTempfail:
									action, code, enh = MsgTempfail, 451, "4.4.3"
								}
								if d.Action != action || d.Trial != trial || d.Allowlisted != allow {
									t.Fatalf("action %s trial %v allowlisted %v, want %s trial %v", d.Action, d.Trial, d.Allowlisted, action, trial)
								}
								if d.Quarantine != (action == MsgQuarantine) {
									t.Fatalf("quarantine %v", d.Quarantine)
								}
								if d.Quarantine && d.QuarantineReason == "" {
									t.Fatal("no quarantine reason")
								}
								if code == 0 {
									if d.Reply != nil {
										t.Fatalf("reply %v", d.Reply)
									}
									return
								}
								if d.Reply == nil || d.Reply.Code != code || d.Reply.EnhancedCode() != enh {
									t.Fatalf("reply %v, want %d %s", d.Reply, code, enh)
								}
								if d.Cause == "" || d.Reason == "" {
									t.Fatalf("cause %q reason %q", d.Cause, d.Reason)
								}
							})
						}
					}
				}
			}
		}
	}
}

// TestDecideMessageTempErrorNeverRejects: whatever is configured, a DNS
// failure alone is never a reject or a quarantine.
func TestDecideMessageTempErrorNeverRejects(t *testing.T) {
	cfg := &VerifyConfig{Enabled: true, DMARCReject: MsgReject, DMARCQuarantine: MsgReject, SPFFail: MsgReject, DKIMFail: MsgReject, TempError: MsgTempfail}
	r := verify.Results{
		DKIM:  []verify.DKIMResult{{Status: verify.TempError, Domain: "example.com"}},
		SPF:   verify.SPFResult{Status: verify.TempError, Domain: "example.com"},
		DMARC: verify.DMARCResult{Status: verify.TempError, FromDomain: "example.com"},
	}
	for _, mode := range []Mode{Trial, Enforce} {
		d := DecideMessage(cfg, r, false, mode)
		if d.Action != MsgTempfail || d.Reply.String() != "451 4.4.3 Temporary DNS failure while verifying your message, try again later" || d.Trial {
			t.Errorf("%s: %s %v", mode, d.Action, d.Reply)
		}
	}
}

func TestDecideMessageMostSevereWins(t *testing.T) {
	cfg := &VerifyConfig{Enabled: true, DMARCQuarantine: MsgQuarantine, SPFFail: MsgTempfail, DKIMFail: MsgReject, TempError: MsgTempfail}
	r := verify.Results{
		DKIM:  []verify.DKIMResult{{Status: verify.Fail, Domain: "example.com", Selector: "s", Reason: "body hash did not verify"}},
		SPF:   verify.SPFResult{Status: verify.Fail, Domain: "example.com"},
		DMARC: verify.DMARCResult{Status: verify.Fail, FromDomain: "example.com", Policy: verify.DispQuarantine, Disposition: verify.DispQuarantine},
	}
	d := DecideMessage(cfg, r, false, Enforce)
	if d.Action != MsgReject || d.Cause != "dkim" || d.Reply.String() != "550 5.7.20 No valid DKIM signature found" || d.Quarantine {
		t.Errorf("%+v %v", d, d.Reply)
	}
	if !strings.Contains(d.Reason, "d=example.com s=s fail (body hash did not verify)") {
		t.Errorf("reason %q", d.Reason)
	}
	cfg.DKIMFail = MsgAccept
	d = DecideMessage(cfg, r, false, Enforce)
	if d.Action != MsgTempfail || d.Cause != "spf" || d.Reply.String() != "450 4.7.23 SPF validation failed for example.com" {
		t.Errorf("%+v %v", d, d.Reply)
	}
	cfg.SPFFail = MsgAccept
	d = DecideMessage(cfg, r, false, Trial)
	if d.Action != MsgQuarantine || !d.Quarantine || d.Cause != "dmarc" || d.Reply != nil {
		t.Errorf("%+v", d)
	}
}

// TestDecideMessageDMARCPassCoversSPFAndDKIM: an authenticated message is
// not refused for a broken second signature or a forwarding SPF fail.
func TestDecideMessageDMARCPassCoversSPFAndDKIM(t *testing.T) {
	cfg := &VerifyConfig{Enabled: true, SPFFail: MsgReject, DKIMFail: MsgReject, TempError: MsgTempfail}
	r := verify.Results{
		DKIM:  []verify.DKIMResult{{Status: verify.Fail, Domain: "list.example.net"}},
		SPF:   verify.SPFResult{Status: verify.Pass, Domain: "example.com"},
		DMARC: verify.DMARCResult{Status: verify.Pass, FromDomain: "example.com"},
	}
	if d := DecideMessage(cfg, r, false, Enforce); d.Action != MsgAccept {
		t.Errorf("DKIM fail under DMARC pass: %s %v", d.Action, d.Reply)
	}
	r.SPF.Status = verify.Fail
	r.DKIM[0] = verify.DKIMResult{Status: verify.Pass, Domain: "example.com"}
	if d := DecideMessage(cfg, r, false, Enforce); d.Action != MsgAccept {
		t.Errorf("SPF fail under DMARC pass: %s %v", d.Action, d.Reply)
	}
	r.DMARC.Status = verify.None
	if d := DecideMessage(cfg, r, false, Enforce); d.Action != MsgReject || d.Cause != "spf" {
		t.Errorf("SPF fail without DMARC: %s %v", d.Action, d.Reply)
	}
}

func TestDecideMessageDisabledAndDefaults(t *testing.T) {
	fail := verify.Results{
		DKIM:  []verify.DKIMResult{{Status: verify.Fail}},
		SPF:   verify.SPFResult{Status: verify.Fail},
		DMARC: verify.DMARCResult{Status: verify.Fail, Policy: verify.DispReject, Disposition: verify.DispReject},
	}
	if d := DecideMessage(nil, fail, false, Enforce); d.Action != MsgAccept || d.AddHeader {
		t.Errorf("nil config: %+v", d)
	}
	if d := DecideMessage(&VerifyConfig{}, fail, false, Enforce); d.Action != MsgAccept || d.AddHeader {
		t.Errorf("disabled: %+v", d)
	}
	def := DefaultVerifyConfig()
	if d := DecideMessage(&def, fail, false, Enforce); d.Action != MsgAccept || !d.AddHeader || d.Reply != nil {
		t.Errorf("defaults enforce something: %+v", d)
	}
	temp := verify.Results{SPF: verify.SPFResult{Status: verify.TempError}, DMARC: verify.DMARCResult{Status: verify.TempError}, DKIM: []verify.DKIMResult{{Status: verify.TempError}}}
	if d := DecideMessage(&def, temp, false, Enforce); d.Action != MsgAccept {
		t.Errorf("defaults defer on a DNS failure: %+v", d)
	}
	if errs := def.Validate(); len(errs) != 0 {
		t.Errorf("defaults: %v", errs)
	}
}

func TestDecideMessageReplySanitized(t *testing.T) {
	cfg := &VerifyConfig{Enabled: true, DMARCReject: MsgReject}
	r := dmarcRes(verify.Fail, verify.DispReject, verify.DispReject)
	r.DMARC.FromDomain = "evil\r\n550 fake\x00.example"
	d := DecideMessage(cfg, r, false, Enforce)
	if got := d.Reply.String(); got != "550 5.7.1 Message rejected per the DMARC policy of evil??550 fake?.example" {
		t.Errorf("%q", got)
	}
}

func TestVerifyConfigValidate(t *testing.T) {
	for a := MsgAccept; a <= MsgReject; a++ {
		cfg := VerifyConfig{Enabled: true, DMARCReject: a, DMARCQuarantine: a, SPFFail: a, DKIMFail: a, TempError: a}
		errs := cfg.Validate()
		ok := a == MsgAccept || a == MsgTempfail
		if ok != (len(errs) == 0) {
			t.Errorf("%s: %v", a, errs)
		}
		if !ok && !strings.Contains(fmt.Sprint(errs), "verify.temp_error: "+a.String()) {
			t.Errorf("%s: %v", a, errs)
		}
	}
	bad := VerifyConfig{SPFFail: 9}
	if errs := bad.Validate(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "verify.spf_fail") {
		t.Errorf("out of range: %v", errs)
	}
	bad = VerifyConfig{TempError: -1}
	if errs := bad.Validate(); len(errs) != 2 || !strings.Contains(fmt.Sprint(errs), "action(-1) is not allowed") {
		t.Errorf("out of range temp_error: %v", errs)
	}
	for _, s := range []string{"accept", "quarantine", "tempfail", "reject"} {
		a, err := ParseMessageAction(s)
		if err != nil || a.String() != s {
			t.Errorf("%s: %s %v", s, a, err)
		}
	}
	if _, err := ParseMessageAction("discard"); err == nil {
		t.Error("discard accepted")
	}
}

// TestDecideMessageDKIMFailWhenDMARCPasses: by default a bad signature on
// a message DMARC passes (aligned SPF) is not acted on; with
// DKIMFailWhenDMARCPasses it is, as OpenDKIM's On-BadSignature reject.
func TestDecideMessageDKIMFailWhenDMARCPasses(t *testing.T) {
	r := verify.Results{
		DKIM:  []verify.DKIMResult{{Status: verify.Fail, Domain: "example.com", Selector: "s", Reason: "body hash did not verify"}},
		SPF:   verify.SPFResult{Status: verify.Pass, Domain: "example.com"},
		DMARC: verify.DMARCResult{Status: verify.Pass, FromDomain: "example.com", Policy: verify.DispReject},
	}
	for _, tc := range []struct {
		always bool
		want   MessageAction
	}{{false, MsgAccept}, {true, MsgReject}} {
		cfg := &VerifyConfig{Enabled: true, DKIMFail: MsgReject, TempError: MsgTempfail, DKIMFailWhenDMARCPasses: tc.always}
		d := DecideMessage(cfg, r, false, Enforce)
		if d.Action != tc.want || tc.want == MsgReject && (d.Cause != "dkim" || d.Reply.String() != "550 5.7.20 No valid DKIM signature found") {
			t.Errorf("DKIMFailWhenDMARCPasses=%v: %s %v", tc.always, d.Action, d.Reply)
		}
	}
}
