package milter

import (
	"context"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"vouch/internal/dmarcreport"
	"vouch/internal/mtaclient"
	"vouch/internal/resolver"
	"vouch/internal/verify"
	"vouch/policy"
)

// TestDMARCReportRows: an inbound message whose From domain publishes
// rua= becomes one report row with the disposition applied; a message
// from an internal host, and one from a domain without rua=, do not.
func TestDMARCReportRows(t *testing.T) {
	store := dmarcreport.NewMemoryStore()
	var rec *dmarcreport.Recorder
	tb := newTestbedLimits(t, nil, Limits{ReadTimeout: time.Minute}, func(env *Env, res *resolver.Resolver) {
		env.Verify = &Verification{Config: verify.Config{Resolver: res, Budget: time.Second},
			Policy: &policy.VerifyConfig{Enabled: true, DMARCReject: policy.MsgReject, TempError: policy.MsgTempfail}, Mode: policy.Enforce}
		rec = dmarcreport.NewRecorder(store, env.Log, dmarcreport.RecorderOptions{Every: time.Hour})
		env.Reports = rec
	})
	tb.dns.MustAdd(`_dmarc.reported.test. 300 IN TXT "v=DMARC1; p=reject; fo=1; rua=mailto:agg@reported.test"`,
		`_dmarc.quiet.test. 300 IN TXT "v=DMARC1; p=reject"`)
	for _, tc := range []struct {
		ip, from, auth string
		refused        bool
	}{
		{"198.51.100.7", "x@reported.test", "", true},     // fails DMARC, p=reject: refused and reported
		{"198.51.100.8", "x@quiet.test", "", true},        // refused, no rua=: not reported
		{"10.1.2.3", "x@reported.test", "", false},        // internal host: not verified, not reported
		{"198.51.100.9", "x@reported.test", "joe", false}, // SMTP AUTH: not verified, not reported
	} {
		raw := "From: " + tc.from + "\nTo: y@example.test\nSubject: hi\n\nbody\n"
		headers, body := mtaclient.Split([]byte(raw))
		r := tb.send(t, &mtaclient.Message{ClientIP: tc.ip, HELO: "mail.remote.test", From: "bounce@remote.test", AuthUser: tc.auth, Headers: headers, Body: strings.NewReader(string(body))})
		if refused := r.Action != nil && r.Action.Type == gomilter.ActionRejectWithCode; refused != tc.refused {
			t.Errorf("%s from %s: refused %v, want %v (%+v)", tc.from, tc.ip, refused, tc.refused, r.Action)
		}
	}
	rec.Close()
	aggs, err := store.Unreported(context.Background(), time.Now().Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(aggs) != 1 || len(aggs[0].Records) != 1 {
		t.Fatalf("store: %+v", aggs)
	}
	a := aggs[0]
	r := a.Records[0]
	if a.Domain != "reported.test" || a.Policy.P != "reject" || a.Policy.FO != "1" || a.RUA[0] != "mailto:agg@reported.test" ||
		r.Row.SourceIP != "198.51.100.7" || r.Row.Count != 1 || r.Row.PolicyEvaluated.Disposition != "reject" ||
		r.Identifiers.HeaderFrom != "reported.test" || r.Identifiers.EnvelopeFrom != "remote.test" ||
		r.AuthResults.SPF[0].Domain != "remote.test" || r.AuthResults.SPF[0].Scope != "mfrom" {
		t.Errorf("aggregate %+v", a)
	}
}

// TestDMARCReportCapture: mail to a rua mailbox (any case, +detail) is
// copied to the report reader and delivered; other mail is not copied.
// The reader here is the package's ParseMessage: what it cannot read is
// kept as malformed with the message as received.
func TestDMARCReportCapture(t *testing.T) {
	store := dmarcreport.NewMemoryStore()
	var capture *dmarcreport.Capture
	tb := newTestbedLimits(t, nil, Limits{ReadTimeout: time.Minute}, func(env *Env, res *resolver.Resolver) {
		capture = dmarcreport.NewCapture(store, env.Log, dmarcreport.CaptureOptions{Mailboxes: []string{"dmarc@example.test"},
			Limits: dmarcreport.Limits{MaxMessage: 1 << 20, MaxXML: 1 << 20}, Discard: true})
		env.Capture = capture
	})
	raw := "From: reports@remote.test\nTo: dmarc@example.test\nSubject: Report domain: example.test\n\nnot a report\n"
	headers, body := mtaclient.Split([]byte(raw))
	for _, rcpt := range []string{"<someone@example.test>", "<DMARC+google@Example.TEST>"} {
		r := tb.send(t, &mtaclient.Message{ClientIP: "198.51.100.7", From: "bounce@remote.test", Rcpts: []string{rcpt}, Headers: headers, Body: strings.NewReader(string(body))})
		if !r.Accepted() {
			t.Errorf("%s: not delivered: %+v", rcpt, r.Action)
		}
	}
	capture.Close()
	mal, err := store.ListMalformed(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := "From: reports@remote.test\r\nTo: dmarc@example.test\r\nSubject: Report domain: example.test\r\n\r\nnot a report\r\n"
	if len(mal) != 1 || string(mal[0].Raw) != want || mal[0].MailFrom != "bounce@remote.test" {
		t.Fatalf("malformed %+v", mal)
	}
	if !strings.Contains(tb.logs.String(), "unreadable report message kept as malformed") {
		t.Errorf("no log line:\n%s", tb.logs.String())
	}
	if h := capture.Held(); h != 0 {
		t.Errorf("%d bytes held", h)
	}
}

// reportXML is a minimal aggregate report about example.test.
const reportXML = `<?xml version="1.0"?><feedback><report_metadata><org_name>remote.test</org_name><email>r@remote.test</email>` +
	`<report_id>r-1</report_id><date_range><begin>1764892800</begin><end>1764979199</end></date_range></report_metadata>` +
	`<policy_published><domain>example.test</domain><p>none</p><pct>100</pct></policy_published>` +
	`<record><row><source_ip>192.0.2.1</source_ip><count>3</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>` +
	`<identifiers><header_from>example.test</header_from></identifiers><auth_results><spf><domain>example.test</domain><result>fail</result></spf></auth_results></record></feedback>`

// TestDMARCReportDiscard: with discard_received, a report message to
// rua mailboxes only is discarded once its report is kept; with another
// recipient beside, or without a readable report, it is delivered.
func TestDMARCReportDiscard(t *testing.T) {
	store := dmarcreport.NewMemoryStore()
	tb := newTestbedLimits(t, nil, Limits{ReadTimeout: time.Minute}, func(env *Env, res *resolver.Resolver) {
		env.Capture = dmarcreport.NewCapture(store, env.Log, dmarcreport.CaptureOptions{Mailboxes: []string{"dmarc@example.test"}, Discard: true})
		t.Cleanup(env.Capture.Close)
	})
	for _, tc := range []struct {
		rcpts   []string
		body    string
		discard bool
	}{
		{[]string{"dmarc@example.test"}, reportXML, true},
		{[]string{"dmarc@example.test", "bob@example.test"}, reportXML, false},
		{[]string{"dmarc@example.test"}, "<feedback>broken", false},
	} {
		raw := "From: reports@remote.test\nTo: dmarc@example.test\nSubject: Report domain: example.test\nContent-Type: text/xml\n\n" + tc.body + "\n"
		headers, body := mtaclient.Split([]byte(raw))
		r := tb.send(t, &mtaclient.Message{ClientIP: "198.51.100.7", From: "bounce@remote.test", Rcpts: tc.rcpts, Headers: headers, Body: strings.NewReader(string(body))})
		discarded := r.Action != nil && r.Action.Type == gomilter.ActionDiscard
		if discarded != tc.discard || !discarded && !r.Accepted() {
			t.Errorf("%v %.20q: discarded %v, want %v (%+v)", tc.rcpts, tc.body, discarded, tc.discard, r.Action)
		}
	}
	recs, err := store.ListReceived(context.Background(), "", time.Time{})
	if err != nil || len(recs) != 1 || recs[0].Feedback.Records[0].Row.Count != 3 || recs[0].Authenticated {
		t.Errorf("received %+v, %v", recs, err)
	}
}
