package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vouch/internal/dmarcreport"
	"vouch/internal/dnstest"
	"vouch/internal/resolver"
	"vouch/internal/testutil"
)

// TestDMARCReportSend: a Sender mails aggregate reports through a real
// Postfix to rua mailboxes, honouring the external-destination check
// (in-process DNS), !size limits, and retrying after Postfix refused for
// now.
func TestDMARCReportSend(t *testing.T) {
	base, err := os.MkdirTemp("", "vouch-dmarc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755) // Postfix's smtpd and virtual read the maps in it
	vmailbox := filepath.Join(base, "vmailbox")
	write(t, vmailbox, "@local.test local.test/catchall/\n@reports.test reports.test/catchall/\n@noauth.test noauth.test/catchall/\n")
	access := filepath.Join(base, "rcpt-access")
	write(t, access, "later@local.test 451 4.7.1 try again later\n")
	port := freePort(t)
	pf := startPostfix(t, []listener{{Port: port}}, "", map[string]string{
		"virtual_mailbox_domains":      "local.test, reports.test, noauth.test",
		"virtual_mailbox_maps":         "texthash:" + vmailbox,
		"smtpd_recipient_restrictions": "check_recipient_access texthash:" + access,
	})
	dns := dnstest.New(t, `local.test._report._dmarc.reports.test. 300 IN TXT "v=DMARC1"`)
	res, err := resolver.New(resolver.Config{Servers: []string{dns.Addr}, Timeout: 300 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogBuffer{}
	yesterday := time.Now().UTC().Add(-24 * time.Hour)

	// send records the evaluations and runs one SendDue with a fresh store;
	// the store is returned for another pass.
	sender := func(t *testing.T, store dmarcreport.Store) *dmarcreport.Sender {
		s, err := dmarcreport.NewSender(dmarcreport.SenderOptions{
			Reporter: dmarcreport.Reporter{OrgName: "vouch e2e", Email: "dmarc-reports@local.test"},
			SMTP:     fmt.Sprintf("127.0.0.1:%d", port), HELO: "vouch.local.test",
			MaxReportSize: 10 << 20, RetryFor: 72 * time.Hour, ClaimTTL: time.Nanosecond,
		}, store, res, slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	storeWith := func(t *testing.T, domain string, ips []string, rua ...string) dmarcreport.Store {
		st := dmarcreport.NewMemoryStore()
		var evs []dmarcreport.Evaluation
		for i, ip := range ips {
			evs = append(evs, dmarcreport.Evaluation{
				Time: yesterday.Add(time.Duration(i) * time.Second), Policy: dmarcreport.PolicyPublished{Domain: domain, P: "quarantine"}, RUA: rua,
				Record: dmarcreport.Record{
					Row:         dmarcreport.Row{SourceIP: ip, Count: 1, PolicyEvaluated: dmarcreport.PolicyEvaluated{Disposition: "none", DKIM: "pass", SPF: "fail"}},
					Identifiers: dmarcreport.Identifiers{HeaderFrom: domain, EnvelopeFrom: "bounce." + domain},
					AuthResults: dmarcreport.AuthResults{
						DKIM: []dmarcreport.DKIMAuthResult{{Domain: domain, Selector: "s1", Result: "pass"}},
						SPF:  []dmarcreport.SPFAuthResult{{Domain: "bounce." + domain, Scope: "mfrom", Result: "softfail"}},
					},
				},
			})
		}
		if err := st.Add(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
		return st
	}
	sendDue := func(t *testing.T, s *dmarcreport.Sender, want string) dmarcreport.Result {
		t.Helper()
		sum, err := s.SendDue(context.Background(), time.Now().Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Results) != 1 || sum.Results[0].Outcome != want {
			t.Fatalf("results %+v, want %s\n%s", sum.Results, want, logs)
		}
		return sum.Results[0]
	}

	t.Run("delivered, external destination checked", func(t *testing.T) {
		st := storeWith(t, "local.test", []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "2001:db8::25", "198.51.100.7"},
			"mailto:dmarc@local.test", "mailto:agg@reports.test", "mailto:agg@noauth.test")
		r := sendDue(t, sender(t, st), dmarcreport.Sent)
		if strings.Join(r.To, ",") != "dmarc@local.test,agg@reports.test" {
			t.Errorf("sent to %v", r.To)
		}
		subject := "Report Domain: local.test Submitter: local.test"
		for _, rcpt := range []string{"dmarc@local.test", "agg@reports.test"} {
			msg := waitReportMail(t, pf, rcpt, subject)
			doc := gunzipAttachment(t, msg)
			validateReport(t, doc)
			var fb dmarcreport.Feedback
			if err := xml.Unmarshal(doc, &fb); err != nil {
				t.Fatal(err)
			}
			counts := map[string]int64{}
			for _, rec := range fb.Records {
				counts[rec.Row.SourceIP] += rec.Row.Count
				if rec.Identifiers.HeaderFrom != "local.test" || rec.Row.PolicyEvaluated.SPF != "fail" {
					t.Errorf("record %+v", rec)
				}
			}
			// IPv6 as RFC 7489's schema wants it: eight groups.
			want := map[string]int64{"192.0.2.1": 3, "198.51.100.7": 1, "2001:db8:0:0:0:0:0:25": 1}
			if fb.Policy.Domain != "local.test" || fb.Policy.P != "quarantine" || fmt.Sprint(counts) != fmt.Sprint(want) {
				t.Errorf("%s: report about %s, policy %s, counts %v; want %v", rcpt, fb.Policy.Domain, fb.Policy.P, counts, want)
			}
		}
		if n := countMail(pf, "noauth.test"); n != 0 {
			t.Errorf("%d reports delivered to noauth.test, which publishes no _report._dmarc record", n)
		}
		if !strings.Contains(logs.String(), "rua=agg@noauth.test record=local.test._report._dmarc.noauth.test") {
			t.Errorf("no log line for the refused destination:\n%s", logs)
		}
	})

	t.Run("size limits", func(t *testing.T) {
		var ips []string
		for i := range 40 {
			ips = append(ips, fmt.Sprintf("203.0.113.%d", i+1))
		}
		st := storeWith(t, "size.local.test", ips, "mailto:small@local.test!1k", "mailto:big@local.test!10m")
		r := sendDue(t, sender(t, st), dmarcreport.Sent)
		if strings.Join(r.To, ",") != "big@local.test" {
			t.Errorf("sent to %v", r.To)
		}
		msg := waitReportMail(t, pf, "big@local.test", "Report Domain: size.local.test")
		if len(msg) < 1024 {
			t.Fatalf("the report is %d bytes: the !1k limit proves nothing", len(msg))
		}
		if bytes.Contains(msg, []byte("small@")) {
			t.Error("the address skipped for its size is in the mail")
		}
		time.Sleep(time.Second) // time for a wrong delivery to show
		if findMail(pf, "local.test", "Delivered-To: small@local.test") != nil {
			t.Error("delivered to the !1k address")
		}
	})

	t.Run("temporary failure, then retry", func(t *testing.T) {
		st := storeWith(t, "temp.local.test", []string{"192.0.2.50"}, "mailto:later@local.test")
		s := sender(t, st)
		r := sendDue(t, s, dmarcreport.Retry)
		if !strings.Contains(r.Reason, "451") {
			t.Errorf("reason %q", r.Reason)
		}
		if left, _ := st.Unreported(context.Background(), time.Now().Add(24*time.Hour)); len(left) != 1 {
			t.Fatalf("%d periods left after a temporary failure, want 1", len(left))
		}
		pf.set("smtpd_recipient_restrictions", "")
		sendDue(t, s, dmarcreport.Sent)
		waitReportMail(t, pf, "later@local.test", "Report Domain: temp.local.test")
		if left, _ := st.Unreported(context.Background(), time.Now().Add(24*time.Hour)); len(left) != 0 {
			t.Errorf("%d periods left after the report went", len(left))
		}
	})
}

// findMail returns a message delivered to a catch-all Maildir of domain
// that contains marker, or nil.
func findMail(pf *postfix, domain, marker string) []byte {
	dir := filepath.Join(pf.mailDir, domain, "catchall", "new")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && bytes.Contains(b, []byte(marker)) {
			return b
		}
	}
	return nil
}

func countMail(pf *postfix, domain string) int {
	entries, _ := os.ReadDir(filepath.Join(pf.mailDir, domain, "catchall", "new"))
	return len(entries)
}

// waitReportMail waits for the report with subject delivered to rcpt.
func waitReportMail(t *testing.T, pf *postfix, rcpt, subject string) []byte {
	t.Helper()
	domain := rcpt[strings.IndexByte(rcpt, '@')+1:]
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b := findMail(pf, domain, "Delivered-To: "+rcpt); b != nil && bytes.Contains(b, []byte(subject)) {
			return b
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no report %q delivered to %s\n%s", subject, rcpt, pf.log())
	return nil
}

// validateReport checks doc against RFC 7489's schema with xmllint.
func validateReport(t *testing.T, doc []byte) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		testutil.Require(t, "xmllint (apt install libxml2-utils)")
	}
	f := filepath.Join(t.TempDir(), "report.xml")
	write(t, f, string(doc))
	out, err := exec.Command("xmllint", "--noout", "--schema", "../internal/dmarcreport/testdata/rfc7489.xsd", f).CombinedOutput()
	if err != nil {
		t.Errorf("the report does not validate: %v\n%s\n%s", err, out, doc)
	}
}

// gunzipAttachment returns the first attachment of a multipart message
// (base64, as vouch writes them), gunzipped, as a report mailbox reads it.
func gunzipAttachment(t testing.TB, msg []byte) []byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("reading the message: %v", err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no attachment: %v", err)
		}
		if !strings.HasPrefix(p.Header.Get("Content-Disposition"), "attachment") {
			continue
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatalf("attachment: %v", err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("attachment: %v", err)
		}
		return b
	}
}
