package dmarcreport

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"vouch/internal/verify"
	"vouch/policy"
)

func TestNewEvaluation(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	rec := &verify.DMARCRecord{Policy: verify.DispReject, SubdomainPolicy: verify.DispQuarantine, ADKIM: "r", ASPF: "s", Pct: 100, FO: "1",
		RUA: []string{"mailto:dmarc@example.com"}}
	sampled := *rec
	sampled.Pct = 30
	noRUA := *rec
	noRUA.RUA = nil
	dkim := []verify.DKIMResult{{Status: verify.Pass, Domain: "example.com", Selector: "s1"}, {Status: verify.Fail, Domain: "list.test", Selector: "k"}}
	spf := verify.SPFResult{Status: verify.Pass, Identity: "mailfrom", Domain: "bounce.example.com"}
	pass := verify.DMARCResult{Status: verify.Pass, FromDomain: "mail.example.com", RecordDomain: "example.com", Policy: verify.DispQuarantine,
		Disposition: verify.DispNone, AlignedDKIM: "example.com", Record: rec}
	fail := verify.DMARCResult{Status: verify.Fail, FromDomain: "example.com", RecordDomain: "example.com", Policy: verify.DispReject,
		Disposition: verify.DispReject, Record: rec}
	failSampled := fail
	failSampled.Disposition, failSampled.Record = verify.DispQuarantine, &sampled
	base := Inbound{Time: at, ClientIP: netip.MustParseAddr("::ffff:192.0.2.7"), MailFrom: "<Bounce@Bounce.Example.COM>"}
	accept := policy.MessageDecision{Action: policy.MsgAccept}
	reject := policy.MessageDecision{Action: policy.MsgReject, Configured: policy.MsgReject, Cause: "dmarc"}

	type want struct {
		disp, dkim, spf string
		reasons         []PolicyOverride
	}
	cases := []struct {
		name   string
		mutate func(in *Inbound)
		ok     bool
		want   want
	}{
		{"pass", func(in *Inbound) { in.Results.DMARC = pass; in.Decision = accept }, true, want{"none", "pass", "fail", nil}},
		{"fail rejected", func(in *Inbound) { in.Results.DMARC = fail; in.Decision = reject }, true, want{"reject", "fail", "fail", nil}},
		{"fail quarantined by dmarc_reject", func(in *Inbound) {
			in.Results.DMARC = fail
			in.Decision = policy.MessageDecision{Action: policy.MsgQuarantine, Quarantine: true, Cause: "dmarc"}
		}, true, want{"quarantine", "fail", "fail", []PolicyOverride{{"local_policy", "verify.dmarc_reject = quarantine"}}}},
		{"fail accepted by default", func(in *Inbound) { in.Results.DMARC = fail; in.Decision = accept }, true,
			want{"none", "fail", "fail", []PolicyOverride{{"local_policy", "verify.dmarc_reject = accept"}}}},
		{"trial mode", func(in *Inbound) {
			in.Results.DMARC = fail
			in.Decision = policy.MessageDecision{Action: policy.MsgTempfail, Configured: policy.MsgReject, Trial: true, Cause: "dmarc"}
		}, true, want{"none", "fail", "fail", []PolicyOverride{{"local_policy", "trial mode: would reject, answered with a temporary failure"}}}},
		{"admin tempfails", func(in *Inbound) {
			in.Results.DMARC = fail
			in.Decision = policy.MessageDecision{Action: policy.MsgTempfail, Configured: policy.MsgTempfail, Cause: "dmarc"}
		}, true, want{"none", "fail", "fail", []PolicyOverride{{"local_policy", "temporary failure (dmarc)"}}}},
		{"allowlisted", func(in *Inbound) {
			in.Results.DMARC = fail
			in.Decision = policy.MessageDecision{Action: policy.MsgAccept, Allowlisted: true}
			in.Allowlist = "192.0.2.0/24 (allow.txt:3)"
		}, true, want{"none", "fail", "fail", []PolicyOverride{{"local_policy", "allowlisted: 192.0.2.0/24 (allow.txt:3)"}}}},
		{"sampled out, quarantined", func(in *Inbound) {
			in.Results.DMARC = failSampled
			in.Decision = policy.MessageDecision{Action: policy.MsgQuarantine, Quarantine: true, Cause: "dmarc"}
		}, true, want{"quarantine", "fail", "fail", []PolicyOverride{{"sampled_out", ""}}}},
		{"sampled out, accepted", func(in *Inbound) { in.Results.DMARC = failSampled; in.Decision = accept }, true,
			want{"none", "fail", "fail", []PolicyOverride{{"sampled_out", ""}, {"local_policy", "verify.dmarc_quarantine = accept"}}}},
		{"pass but refused for DKIM", func(in *Inbound) {
			in.Results.DMARC = pass
			in.Decision = policy.MessageDecision{Action: policy.MsgReject, Cause: "dkim"}
		}, true, want{"reject", "pass", "fail", []PolicyOverride{{"local_policy", "dkim"}}}},
		{"authenticated client", func(in *Inbound) { in.Results.DMARC = pass; in.TrustedBy = "smtp auth joe" }, false, want{}},
		{"internal host", func(in *Inbound) { in.Results.DMARC = fail; in.TrustedBy = "internal host 10.0.0.0/8" }, false, want{}},
		{"no rua", func(in *Inbound) { in.Results.DMARC = fail; in.Results.DMARC.Record = &noRUA }, false, want{}},
		{"temperror", func(in *Inbound) {
			in.Results.DMARC = verify.DMARCResult{Status: verify.TempError, FromDomain: "example.com", Record: rec}
		}, false, want{}},
		{"none", func(in *Inbound) {
			in.Results.DMARC = verify.DMARCResult{Status: verify.None, FromDomain: "example.com"}
		}, false, want{}},
		{"not checked", func(in *Inbound) {}, false, want{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base
			in.Results.DKIM, in.Results.SPF = dkim, spf
			c.mutate(&in)
			ev, ok := NewEvaluation(in)
			if ok != c.ok {
				t.Fatalf("recorded %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			dm := in.Results.DMARC
			wantEv := Evaluation{
				Time: at.UTC(),
				Policy: PolicyPublished{Domain: "example.com", ADKIM: "r", ASPF: "s", P: "reject", SP: "quarantine",
					Pct: dm.Record.Pct, FO: "1"},
				RUA: []string{"mailto:dmarc@example.com"},
				Record: Record{
					Row: Row{SourceIP: "192.0.2.7", Count: 1,
						PolicyEvaluated: PolicyEvaluated{Disposition: c.want.disp, DKIM: c.want.dkim, SPF: c.want.spf, Reasons: c.want.reasons}},
					Identifiers: Identifiers{HeaderFrom: dm.FromDomain, EnvelopeFrom: "bounce.example.com"},
					AuthResults: AuthResults{
						DKIM: []DKIMAuthResult{{Domain: "example.com", Selector: "s1", Result: "pass"}, {Domain: "list.test", Selector: "k", Result: "fail"}},
						SPF:  []SPFAuthResult{{Domain: "bounce.example.com", Scope: "mfrom", Result: "pass"}},
					},
				},
			}
			if !reflect.DeepEqual(ev, wantEv) {
				t.Errorf("got  %+v\nwant %+v", ev, wantEv)
			}
		})
	}
}

// TestNewEvaluationSPFScope: the null sender's SPF is the HELO identity,
// reported with scope helo, and an unchecked SPF is none.
func TestNewEvaluationSPFScope(t *testing.T) {
	rec := &verify.DMARCRecord{Policy: verify.DispNone, ADKIM: "r", ASPF: "r", Pct: 100, RUA: []string{"mailto:r@example.com"}}
	dm := verify.DMARCResult{Status: verify.Pass, FromDomain: "example.com", RecordDomain: "example.com", AlignedDKIM: "example.com", Record: rec}
	cases := []struct {
		spf      verify.SPFResult
		mailFrom string
		want     SPFAuthResult
		envFrom  string
	}{
		{verify.SPFResult{Status: verify.SoftFail, Identity: "helo", Domain: "mx.example.net"}, "<>", SPFAuthResult{"mx.example.net", "helo", "softfail"}, ""},
		{verify.SPFResult{}, "a@b.example", SPFAuthResult{"", "mfrom", "none"}, "b.example"},
	}
	for _, c := range cases {
		ev, ok := NewEvaluation(Inbound{ClientIP: netip.MustParseAddr("2001:db8::1"), MailFrom: c.mailFrom,
			Results: verify.Results{DMARC: dm, SPF: c.spf}})
		if !ok {
			t.Fatal("not recorded")
		}
		if got := ev.Record.AuthResults.SPF; len(got) != 1 || got[0] != c.want {
			t.Errorf("spf %+v, want %+v", got, c.want)
		}
		if ev.Record.Identifiers.EnvelopeFrom != c.envFrom || ev.Record.Row.SourceIP != "2001:db8::1" || ev.Record.AuthResults.DKIM != nil {
			t.Errorf("identifiers %+v row %+v", ev.Record.Identifiers, ev.Record.Row)
		}
	}
}
