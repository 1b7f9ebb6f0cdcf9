package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"vouch/internal/dmarcreport"
)

// reportsSection is a [dmarc_reports] section with a bolt store at path.
func reportsSection(path, mailbox string, discard bool) string {
	return fmt.Sprintf(`[dmarc_reports]
enabled = true
store = "bolt"
path = %q
org_name = "Local Test"
from = "dmarc-reports@local.test"
rua_mailboxes = [%q]
discard_received = %v
max_xml_size = 1048576
`, path, mailbox, discard)
}

// reportedDomain publishes SPF and DMARC (p=reject, fo=1, rua=) for
// sender.test, whose server is mail.good.test.
var reportedDomain = []string{
	"sender.test. 300 IN MX 10 mail.good.test.",
	`sender.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
	`_dmarc.sender.test. 300 IN TXT "v=DMARC1; p=reject; fo=1; rua=mailto:dmarc@sender.test"`,
}

// reportsBase is the config the tests here share: the test DNS, and an
// empty reverse whitelist.
func reportsBase(z *zone, dir string) string {
	return fmt.Sprintf("[dns]\nservers = [%q]\ntimeout = \"1s\"\n[whitelist]\nreverse = %q\n", z.Addr, dir+"/none.dat")
}

// openReportStore opens a running vouch's bolt store beside it (bbolt
// opens the file per operation, so both can use it).
func openReportStore(t testing.TB, path string) dmarcreport.Store {
	t.Helper()
	st, err := dmarcreport.OpenStore(dmarcreport.StoreOptions{Kind: "bolt", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitRecords waits until the store's unreported rows for domain are n
// records (the daemon writes them every few seconds) and returns them.
func waitRecords(t testing.TB, st dmarcreport.Store, domain string, n int) dmarcreport.Aggregate {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last []dmarcreport.Aggregate
	for time.Now().Before(deadline) {
		aggs, err := st.Unreported(context.Background(), time.Now().Add(48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		last = aggs
		for _, a := range aggs {
			if a.Domain == domain && len(a.Records) == n {
				return a
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no %d records for %s in the store: %+v", n, domain, last)
	return dmarcreport.Aggregate{}
}

// TestDMARCReportRowsBehindPostfix: inbound mail through Postfix and vouch
// leaves one report row per message evaluated for DMARC, with the
// disposition vouch applied: a pass; a p=reject failure refused (reject);
// the same failure in trial mode (none, local_policy); mail from an
// internal host is not recorded.
func TestDMARCReportRowsBehindPostfix(t *testing.T) {
	dir := t.TempDir()
	z := newZone(t, append(screenZone, reportedDomain...)...)
	key := z.genkey(t, dir, "sender.test", "k1", "rsa")
	common := "authserv_id = \"mx.local.test\"\n" + reportsBase(z, dir) + "[signing]\ninternal_hosts = [\"127.0.0.1\", \"10.0.0.0/8\"]\n"
	enforceDB, trialDB := filepath.Join(dir, "enforce.db"), filepath.Join(dir, "trial.db")
	enforce := startVouch(t, dir, common+"[screen]\nmode = \"enforce\"\n[verify]\ndmarc_reject = \"reject\"\n"+reportsSection(enforceDB, "dmarc@local.test", false))
	trial := startVouch(t, dir, common+"[verify]\ndmarc_reject = \"reject\"\n"+reportsSection(trialDB, "dmarc@local.test", false))
	enforcePort, trialPort := freePort(t), freePort(t)
	pf := startPostfix(t, []listener{{enforcePort, enforce.milter()}, {trialPort, trial.milter()}}, "", nil)
	good := &client{Addr: "192.0.2.10", Name: "mail.good.test", HELO: "mail.good.test"}
	stranger := &client{Addr: "192.0.2.30", HELO: "[192.0.2.30]"}
	internal := &client{Addr: "10.1.2.3", HELO: "pc.local.test"}
	at := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

	raw := "From: Sam <sam@sender.test>\nTo: bob@local.test\nSubject: rows-pass\nDate: " + time.Now().Format(time.RFC1123Z) + "\nMessage-ID: <rp@sender.test>\n\nhello\n"
	if s := deliver(t, at(enforcePort), good, "sam@sender.test", "bob@local.test", signAs(t, key, "sender.test", "k1", raw)); s.Stage != "" {
		t.Fatalf("pass refused: %+v", s)
	}
	pf.waitMail("rows-pass")
	if s := deliver(t, at(enforcePort), stranger, "ceo@sender.test", "bob@local.test", message("ceo@sender.test", "rows-forged")); s.Stage != "END" || !strings.HasPrefix(s.Reply, "550 5.7.1") {
		t.Fatalf("forged mail: %+v", s)
	}
	if s := deliver(t, at(trialPort), stranger, "ceo@sender.test", "bob@local.test", message("ceo@sender.test", "rows-trial")); s.Stage != "END" || !strings.HasPrefix(s.Reply, "450 4.7.1") {
		t.Fatalf("forged mail, trial mode: %+v", s)
	}
	for _, port := range []int{enforcePort, trialPort} {
		if s := deliver(t, at(port), internal, "pc@sender.test", "bob@local.test", message("pc@sender.test", fmt.Sprintf("rows-internal-%d", port))); s.Stage != "" {
			t.Fatalf("internal mail refused: %+v", s)
		}
		pf.waitMail(fmt.Sprintf("rows-internal-%d", port))
	}

	spfFail := []dmarcreport.SPFAuthResult{{Domain: "sender.test", Scope: "mfrom", Result: "fail"}}
	policy := dmarcreport.PolicyPublished{Domain: "sender.test", ADKIM: "r", ASPF: "r", P: "reject", Pct: 100, FO: "1"}
	ea := waitRecords(t, openReportStore(t, enforceDB), "sender.test", 2)
	want := []dmarcreport.Record{
		{
			Row:         dmarcreport.Row{SourceIP: "192.0.2.10", Count: 1, PolicyEvaluated: dmarcreport.PolicyEvaluated{Disposition: "none", DKIM: "pass", SPF: "pass"}},
			Identifiers: dmarcreport.Identifiers{HeaderFrom: "sender.test", EnvelopeFrom: "sender.test"},
			AuthResults: dmarcreport.AuthResults{DKIM: []dmarcreport.DKIMAuthResult{{Domain: "sender.test", Selector: "k1", Result: "pass"}},
				SPF: []dmarcreport.SPFAuthResult{{Domain: "sender.test", Scope: "mfrom", Result: "pass"}}},
		},
		{
			Row:         dmarcreport.Row{SourceIP: "192.0.2.30", Count: 1, PolicyEvaluated: dmarcreport.PolicyEvaluated{Disposition: "reject", DKIM: "fail", SPF: "fail"}},
			Identifiers: dmarcreport.Identifiers{HeaderFrom: "sender.test", EnvelopeFrom: "sender.test"},
			AuthResults: dmarcreport.AuthResults{SPF: spfFail},
		},
	}
	if !reflect.DeepEqual(ea.Records, want) || ea.Policy != policy || !slices.Equal(ea.RUA, []string{"mailto:dmarc@sender.test"}) {
		t.Errorf("enforce store:\n got %+v\nwant %+v", ea, want)
	}
	ta := waitRecords(t, openReportStore(t, trialDB), "sender.test", 1)
	wantTrial := dmarcreport.Record{
		Row: dmarcreport.Row{SourceIP: "192.0.2.30", Count: 1, PolicyEvaluated: dmarcreport.PolicyEvaluated{Disposition: "none", DKIM: "fail", SPF: "fail",
			Reasons: []dmarcreport.PolicyOverride{{Type: "local_policy", Comment: "trial mode: would reject, answered with a temporary failure"}}}},
		Identifiers: dmarcreport.Identifiers{HeaderFrom: "sender.test", EnvelopeFrom: "sender.test"},
		AuthResults: dmarcreport.AuthResults{SPF: spfFail},
	}
	if !reflect.DeepEqual(ta.Records, []dmarcreport.Record{wantTrial}) {
		t.Errorf("trial store:\n got %+v\nwant %+v", ta.Records, wantTrial)
	}
}

// receivedShapes are report mails of internal/dmarcreport/testdata (zip,
// gzip and plain XML attachments) and the Message-ID that finds each in
// the mailbox.
var receivedShapes = map[string]string{"google.eml": "9aab0@google.com", "microsoft.eml": "e233b@microsoft.com", "plain-xml-dmarcbis.eml": "6866a@mail.example.net"}

func readShape(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "internal", "dmarcreport", "testdata", "received", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostileReport is a report mail whose attachment is a zip bomb (20 MiB
// of XML in a few KiB) or a gzip that is not one.
func hostileReport(t testing.TB, kind, id string) string {
	t.Helper()
	var att []byte
	name := "evil.test!local.test!1764892800!1764979199"
	switch kind {
	case "zip bomb":
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, err := zw.Create(name + ".xml")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("<?xml version=\"1.0\"?><feedback>"))
		w.Write(bytes.Repeat([]byte(" "), 20<<20))
		zw.Close()
		att, name = b.Bytes(), name+".zip"
	case "broken gzip":
		att, name = append([]byte{0x1f, 0x8b, 0x08, 0x00}, bytes.Repeat([]byte("not deflate data "), 50)...), name+".xml.gz"
	}
	return fmt.Sprintf("From: reports@evil.test\nTo: dmarc@local.test\nSubject: Report Domain: local.test\nMessage-ID: <%s>\nMIME-Version: 1.0\n"+
		"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=%q\nContent-Transfer-Encoding: base64\n\n%s\n",
		id, name, wrap76(base64.StdEncoding.EncodeToString(att)))
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	return b.String() + s
}

// TestDMARCReportsReceivedBehindPostfix: report mails to the rua mailbox
// (zip, gzip, plain XML) pass Postfix and vouch into the store, exactly
// as the parser reads them, and are delivered; hostile ones are logged,
// kept as malformed and delivered; with discard_received, a report mail is
// stored and not delivered.
func TestDMARCReportsReceivedBehindPostfix(t *testing.T) {
	dir := t.TempDir()
	z := newZone(t, screenZone...)
	common := reportsBase(z, dir)
	keepDB, discardDB := filepath.Join(dir, "keep.db"), filepath.Join(dir, "discard.db")
	keep := startVouch(t, dir, common+reportsSection(keepDB, "dmarc@local.test", false))
	discard := startVouch(t, dir, common+reportsSection(discardDB, "DMARC@local.test", true))
	keepPort, discardPort := freePort(t), freePort(t)
	pf := startPostfix(t, []listener{{keepPort, keep.milter()}, {discardPort, discard.milter()}}, "", nil)
	reporter := &client{Addr: "192.0.2.10", Name: "mail.good.test", HELO: "mail.good.test"}
	at := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

	var want []dmarcreport.Feedback
	for name, id := range receivedShapes {
		msg := readShape(t, name)
		fbs, err := dmarcreport.ParseMessage(strings.NewReader(msg), dmarcreport.Limits{MaxXML: 1 << 20})
		if err != nil || len(fbs) == 0 {
			t.Fatalf("%s: the parser reads %d reports: %v", name, len(fbs), err)
		}
		want = append(want, fbs...)
		if s := deliver(t, at(keepPort), reporter, "bounce@good.test", "dmarc+"+strings.TrimSuffix(name, ".eml")+"@local.test", msg); s.Stage != "" {
			t.Fatalf("%s refused: %+v", name, s)
		}
		pf.waitMail(id)
	}
	for kind, id := range map[string]string{"zip bomb": "bomb@evil.test", "broken gzip": "gz@evil.test"} {
		if s := deliver(t, at(keepPort), reporter, "x@good.test", "dmarc@local.test", hostileReport(t, kind, id)); s.Stage != "" {
			t.Fatalf("%s refused: %+v", kind, s)
		}
		pf.waitMail(id)
	}
	st := openReportStore(t, keepDB)
	var got []dmarcreport.Received
	var mal []dmarcreport.Malformed
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && (len(got) < len(want) || len(mal) < 2) {
		time.Sleep(200 * time.Millisecond)
		var err error
		if got, err = st.ListReceived(context.Background(), "", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if mal, err = st.ListMalformed(context.Background(), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("store holds %d received reports, want %d", len(got), len(want))
	}
	// `vouch reports` reads the store while the daemon that writes it runs.
	out, err := exec.Command(vouchBin, "reports", "list", "-config", keep.config, "-since", "2000-01-01", "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("vouch reports list beside the daemon: %v\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), `"`+w.Policy.Domain+`"`) || !strings.Contains(string(out), `"`+w.Metadata.OrgName+`"`) {
			t.Errorf("vouch reports list lacks %s from %s:\n%s", w.Policy.Domain, w.Metadata.OrgName, out)
		}
	}
	for _, w := range want {
		i := slices.IndexFunc(got, func(r dmarcreport.Received) bool { return r.ID == dmarcreport.ReceivedID(&w) })
		if i < 0 {
			t.Errorf("report %s of %s not stored", w.Metadata.ReportID, w.Metadata.OrgName)
			continue
		}
		if r := got[i]; !reflect.DeepEqual(r.Feedback, w) || r.MailFrom != "bounce@good.test" || r.Authenticated {
			t.Errorf("stored %+v\nparsed %+v", r, w)
		}
	}
	if len(mal) != 2 || !slices.ContainsFunc(mal, func(m dmarcreport.Malformed) bool { return strings.Contains(string(m.Raw), "bomb@evil.test") }) {
		t.Errorf("malformed: %d kept", len(mal))
	}
	logs := keep.logs.String()
	if n := strings.Count(logs, "unreadable report message kept as malformed"); n != 2 || !strings.Contains(logs, "mail_from=x@good.test") {
		t.Errorf("%d log lines for the hostile mails:\n%s", n, logs)
	}

	// discard_received: stored, and Postfix discards the message.
	yahoo := readShape(t, "yahoo.eml")
	if s := deliver(t, at(discardPort), reporter, "bounce@good.test", "dmarc@local.test", yahoo); s.Stage != "" {
		t.Fatalf("yahoo refused: %+v", s)
	}
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(pf.log(), "milter-discard") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(pf.log(), "milter-discard") {
		t.Fatalf("Postfix did not discard the report mail:\n%s", pf.log())
	}
	wantYahoo, err := dmarcreport.ParseMessage(strings.NewReader(yahoo), dmarcreport.Limits{})
	if err != nil || len(wantYahoo) != 1 {
		t.Fatalf("yahoo.eml: %d reports, %v", len(wantYahoo), err)
	}
	recs, err := openReportStore(t, discardDB).ListReceived(context.Background(), "", time.Time{})
	if err != nil || len(recs) != 1 || !reflect.DeepEqual(recs[0].Feedback, wantYahoo[0]) {
		t.Fatalf("discard store: %+v, %v", recs, err)
	}
	if containsMail(pf, "96cd2@dmarc.yahoo.com") {
		t.Error("the discarded report mail was delivered")
	}
}

// containsMail reports whether a delivered mail contains marker.
func containsMail(pf *postfix, marker string) bool {
	dir := filepath.Join(pf.mailDir, "local.test", "catchall", "new")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && bytes.Contains(b, []byte(marker)) {
			return true
		}
	}
	return false
}
