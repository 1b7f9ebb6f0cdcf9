package dmarcreport

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"vouch/internal/testutil"
)

var updateBuildGolden = flag.Bool("update-build", false, "rewrite the golden reports of internal/dmarcreport/testdata/golden")

var testReporter = Reporter{OrgName: "Example Mail", Email: "dmarc-reports@mx.example.net", ExtraContactInfo: "https://mx.example.net/dmarc"}

// day is the UTC day the test evaluations belong to.
var day = time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)

// testEvaluations are inbound messages as the milter records them: one
// Evaluation per message, built by hand.
func testEvaluations() []Evaluation {
	com := PolicyPublished{Domain: "example.com", ADKIM: "r", ASPF: "r", P: "reject", Pct: 100} // no sp=, no fo=
	org := PolicyPublished{Domain: "example.org", ADKIM: "s", ASPF: "s", P: "none", SP: "quarantine", Pct: 50, FO: "1"}
	rua := []string{"mailto:dmarc@example.com"}
	ev := func(at string, p PolicyPublished, r Record) Evaluation {
		tm, err := time.Parse(time.TimeOnly, at)
		if err != nil {
			panic(err)
		}
		r.Row.Count = 1
		return Evaluation{Time: day.Add(tm.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))), Policy: p, RUA: rua, Record: r}
	}
	// passing is a message that passed everything, aligned.
	passing := func(ip, domain, selector string) Record {
		return Record{
			Row:         Row{SourceIP: ip, PolicyEvaluated: PolicyEvaluated{Disposition: "none", DKIM: "pass", SPF: "pass"}},
			Identifiers: Identifiers{EnvelopeFrom: domain, HeaderFrom: domain},
			AuthResults: AuthResults{
				DKIM: []DKIMAuthResult{{Domain: domain, Selector: selector, Result: "pass"}},
				SPF:  []SPFAuthResult{{Domain: domain, Scope: "mfrom", Result: "pass"}},
			},
		}
	}
	pass := passing("192.0.2.10", "example.com", "s2026")
	// The same client over IPv4-mapped IPv6 (a dual-stack socket): the
	// report merges it into pass.
	mapped := pass
	mapped.Row.SourceIP = "::ffff:192.0.2.10"
	dkimFail := Record{
		Row:         Row{SourceIP: "192.0.2.20", PolicyEvaluated: PolicyEvaluated{Disposition: "none", DKIM: "fail", SPF: "pass"}},
		Identifiers: Identifiers{EnvelopeFrom: "bounce.example.com", HeaderFrom: "example.com"},
		AuthResults: AuthResults{
			DKIM: []DKIMAuthResult{{Domain: "example.com", Selector: "s2026", Result: "fail", HumanResult: "body hash did not verify"}},
			SPF:  []SPFAuthResult{{Domain: "bounce.example.com", Scope: "mfrom", Result: "pass"}},
		},
	}
	// p=reject, failed, but accepted: the sender is on the local allowlist.
	overridden := Record{
		Row: Row{SourceIP: "198.51.100.7", PolicyEvaluated: PolicyEvaluated{Disposition: "none", DKIM: "fail", SPF: "fail",
			Reasons: []PolicyOverride{{Type: "local_policy", Comment: "allowlist"}}}},
		Identifiers: Identifiers{EnvelopeFrom: "list.example.net", HeaderFrom: "example.com"},
		AuthResults: AuthResults{SPF: []SPFAuthResult{{Domain: "list.example.net", Scope: "mfrom", Result: "softfail"}}},
	}
	rejected := Record{
		Row:         Row{SourceIP: "203.0.113.66", PolicyEvaluated: PolicyEvaluated{Disposition: "reject", DKIM: "fail", SPF: "fail"}},
		Identifiers: Identifiers{EnvelopeFrom: "example.com", HeaderFrom: "example.com"},
		AuthResults: AuthResults{SPF: []SPFAuthResult{{Domain: "example.com", Scope: "mfrom", Result: "fail"}}},
	}
	// IPv6, several signatures, one of them aligned.
	v6 := Record{
		Row:         Row{SourceIP: "2001:db8::25", PolicyEvaluated: PolicyEvaluated{Disposition: "none", DKIM: "pass", SPF: "fail"}},
		Identifiers: Identifiers{EnvelopeFrom: "esp.example", HeaderFrom: "example.com"},
		AuthResults: AuthResults{
			DKIM: []DKIMAuthResult{
				{Domain: "example.com", Selector: "esp1", Result: "pass"},
				{Domain: "esp.example", Selector: "k1", Result: "pass"},
				{Domain: "old.example.com", Selector: "gone", Result: "permerror"},
			},
			SPF: []SPFAuthResult{{Domain: "esp.example", Scope: "mfrom", Result: "fail"}},
		},
	}
	// A bounce (null sender): SPF checked the HELO name, and the recorder
	// left the scope out.
	bounce := Record{
		Row:         Row{SourceIP: "192.0.2.200", PolicyEvaluated: PolicyEvaluated{Disposition: "none", DKIM: "pass", SPF: "fail"}},
		Identifiers: Identifiers{HeaderFrom: "example.com"},
		AuthResults: AuthResults{
			DKIM: []DKIMAuthResult{{Domain: "example.com", Selector: "s2026", Result: "pass"}},
			SPF:  []SPFAuthResult{{Domain: "mx.example.com", Result: "pass"}},
		},
	}
	orgPass := passing("192.0.2.99", "example.org", "a")
	return []Evaluation{
		ev("08:00:00", com, v6), ev("08:01:00", com, pass), ev("09:00:00", com, dkimFail),
		ev("10:00:00", com, pass), ev("11:00:00", com, overridden), ev("12:00:00", com, mapped),
		ev("12:30:00", com, rejected), ev("13:00:00", com, bounce), ev("14:00:00", com, v6),
		ev("15:00:00", org, orgPass),
	}
}

// storedAggregates runs the evaluations made before until through a
// MemoryStore, as the daemon does, and returns what it has for the day by
// domain.
func storedAggregates(t *testing.T, until time.Time) map[string]Aggregate {
	t.Helper()
	st := NewMemoryStore()
	ctx := context.Background()
	evs := slices.DeleteFunc(testEvaluations(), func(ev Evaluation) bool { return !ev.Time.Before(until) })
	if err := st.Add(ctx, evs); err != nil {
		t.Fatal(err)
	}
	aggs, err := st.Unreported(ctx, day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Aggregate{}
	for _, a := range aggs {
		out[a.Domain] = a
	}
	return out
}

// TestBuildGolden builds the reports of a known day and compares them line
// by line (one field a line) with the expected XML in testdata/golden, and
// validates them with xmllint against RFC 7489's schema.
func TestBuildGolden(t *testing.T) {
	tests := []struct {
		domain string
		now    time.Time
		golden string
	}{
		{"example.com", day.Add(30 * time.Hour), "example.com.xml"},
		// `vouch reports send` at 13:30 reports the day so far.
		{"example.com", day.Add(13*time.Hour + 30*time.Minute), "example.com-partial.xml"},
		{"example.org", day.Add(26 * time.Hour), "example.org.xml"},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			fb := Build(testReporter, storedAggregates(t, tc.now)[tc.domain], tc.now)
			got, err := ReportXML(fb)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", tc.golden)
			if *updateBuildGolden {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			compareLines(t, got, want)
			readsBack(t, want, fb) // the golden file is the report built
			if err := xmllint(t, got); err != nil {
				t.Errorf("report does not validate against RFC 7489's schema: %v", err)
			}
		})
	}
}

// readsBack checks that doc unmarshals into exactly fb.
func readsBack(t *testing.T, doc []byte, fb *Feedback) {
	t.Helper()
	var back Feedback
	if err := xml.Unmarshal(doc, &back); err != nil {
		t.Fatal(err)
	}
	back.XMLName = fb.XMLName
	if !reflect.DeepEqual(&back, fb) {
		t.Errorf("XML reads back as\n%+v\nwant\n%+v", back, *fb)
	}
}

// compareLines reports every line (field) where got and want differ.
func compareLines(t *testing.T, got, want []byte) {
	t.Helper()
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("line %d: got %q, want %q", i+1, strings.TrimSpace(gl), strings.TrimSpace(wl))
		}
	}
}

// xmllint validates an XML document with the real xmllint against
// testdata/rfc7489.xsd.
func xmllint(t *testing.T, doc []byte) error {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		testutil.Require(t, "xmllint (apt: libxml2-utils)")
	}
	f := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("xmllint", "--noout", "--schema", filepath.Join("testdata", "rfc7489.xsd"), f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// TestSchemaRefuses shows that the xmllint check can fail, and that what
// Build normalises is what the schema demands.
func TestSchemaRefuses(t *testing.T) {
	built := Build(testReporter, storedAggregates(t, day.AddDate(0, 0, 1))["example.com"], day.Add(30*time.Hour))
	tests := []struct {
		name   string
		change func(fb *Feedback)
		want   string // in xmllint's complaint
	}{
		{"unknown disposition", func(fb *Feedback) { fb.Records[0].Row.PolicyEvaluated.Disposition = "maybe" }, "'maybe'"},
		{"compressed IPv6", func(fb *Feedback) { fb.Records[len(fb.Records)-1].Row.SourceIP = "2001:db8::25" }, "'2001:db8::25'"},
		{"no sp", func(fb *Feedback) { fb.Policy.SP = "" }, "sp"},
		{"no version", func(fb *Feedback) { fb.Version = "" }, "version"},
		{"no SPF scope", func(fb *Feedback) { fb.Records[0].AuthResults.SPF[0].Scope = "" }, "scope"},
		{"no SPF result", func(fb *Feedback) { fb.Records[0].AuthResults.SPF = nil }, "spf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fb Feedback
			deepCopy(t, built, &fb)
			tc.change(&fb)
			doc, err := ReportXML(&fb)
			if err != nil {
				t.Fatal(err)
			}
			err = xmllint(t, doc)
			if err == nil {
				t.Fatalf("xmllint accepted the report")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("xmllint refused it, but not for %q: %v", tc.want, err)
			}
		})
	}
}

func deepCopy(t *testing.T, from, to any) {
	t.Helper()
	b, err := json.Marshal(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, to); err != nil {
		t.Fatal(err)
	}
}

func TestBuildLeavesAggregate(t *testing.T) {
	a := storedAggregates(t, day.AddDate(0, 0, 1))["example.com"]
	var before Aggregate
	deepCopy(t, a, &before)
	Build(testReporter, a, day.Add(30*time.Hour))
	var after Aggregate
	deepCopy(t, a, &after)
	// Store.Done subtracts the aggregate as it was read: Build must not
	// have rewritten its records (the IPv6 address, the SPF scope).
	if !reflect.DeepEqual(before, after) {
		t.Errorf("Build changed its Aggregate:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestDateRange(t *testing.T) {
	tests := []struct {
		name       string
		now        time.Time
		begin, end time.Time
	}{
		{"day over", day.Add(40 * time.Hour), day, day.Add(24*time.Hour - time.Second)},
		{"exactly midnight after", day.Add(24 * time.Hour), day, day.Add(24*time.Hour - time.Second)},
		{"mid-day", day.Add(13*time.Hour + 30*time.Minute + 500*time.Millisecond), day, day.Add(13*time.Hour + 30*time.Minute)},
		{"other zone", day.Add(9 * time.Hour).In(time.FixedZone("X", -10*3600)), day, day.Add(9 * time.Hour)},
		{"clock before the day", day.Add(-time.Hour), day, day},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, e := dateRange(day.Format(DayFormat), tc.now)
			if !b.Equal(tc.begin) || !e.Equal(tc.end) {
				t.Errorf("dateRange = %v, %v; want %v, %v", b, e, tc.begin, tc.end)
			}
		})
	}
}

func TestReportID(t *testing.T) {
	a := storedAggregates(t, day.AddDate(0, 0, 1))["example.com"]
	id := func(rep Reporter, a Aggregate, now time.Time) string { return Build(rep, a, now).Metadata.ReportID }
	full := id(testReporter, a, day.Add(30*time.Hour))
	if !regexp.MustCompile(`^2026-12-04\.example\.com\.[0-9a-f]{16}$`).MatchString(full) {
		t.Errorf("report ID %q: want day.domain.hash", full)
	}
	if again := id(testReporter, a, day.Add(50*time.Hour)); again != full {
		t.Errorf("same period, same end, another ID: %q, %q", full, again)
	}
	other := a
	other.Domain, other.Policy.Domain = "example.net", "example.net"
	otherRep := testReporter
	otherRep.Email = "dmarc@mx2.example.net"
	for name, got := range map[string]string{
		"partial day":    id(testReporter, a, day.Add(13*time.Hour)),
		"other domain":   id(testReporter, other, day.Add(30*time.Hour)),
		"other reporter": id(otherRep, a, day.Add(30*time.Hour)),
	} {
		if got == full {
			t.Errorf("%s: same report ID %q", name, got)
		}
	}
}

// fileNameRE is RFC 7489 §7.2.1.1's filename with extension "xml.gz":
// receiver "!" policy-domain "!" begin-timestamp "!" end-timestamp
// [ "!" unique-id ] "." extension.
var fileNameRE = regexp.MustCompile(`^([a-z0-9_-]+(\.[a-z0-9_-]+)*)!([a-z0-9_-]+(\.[a-z0-9_-]+)*)!([0-9]+)!([0-9]+)(![A-Za-z0-9]+)?\.xml\.gz$`)

func TestEncode(t *testing.T) {
	a := storedAggregates(t, day.AddDate(0, 0, 1))["example.com"]
	hostile := a
	hostile.Policy.Domain = "../Evil!x/y\r\n.example"
	tests := []struct {
		name       string
		a          Aggregate
		wantPrefix string
	}{
		{"example.com", a, "mx.example.net!example.com!1796342400!1796428799!"},
		{"hostile domain", hostile, "mx.example.net!_evil_x_y__.example!1796342400!1796428799!"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fb := Build(testReporter, tc.a, day.Add(30*time.Hour))
			gz, name, err := Encode(testReporter, fb)
			if err != nil {
				t.Fatal(err)
			}
			if !fileNameRE.MatchString(name) || !strings.HasPrefix(name, tc.wantPrefix) {
				t.Errorf("file name %q: want RFC 7489 grammar, starting %q", name, tc.wantPrefix)
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ReportXML(fb)
			if !bytes.Equal(got, want) {
				t.Errorf("gunzipped report differs from ReportXML:\n%s", got)
			}
			if !bytes.HasPrefix(got, []byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n<feedback>")) {
				t.Errorf("report starts %q", got[:min(len(got), 60)])
			}
			if zr.Name != strings.TrimSuffix(name, ".gz") {
				t.Errorf("gzip name %q, file name %q", zr.Name, name)
			}
			readsBack(t, got, fb)
		})
	}
}

// readReportMail parses a report mail as a receiver would: net/mail and
// mime/multipart. It returns the header, the text part and the attachment's
// file name and gunzipped content.
func readReportMail(t testing.TB, msg []byte) (h mail.Header, text, filename string, xmlDoc []byte) {
	t.Helper()
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') || c == '\r' && (i+1 == len(msg) || msg[i+1] != '\n') {
			t.Fatalf("bare CR or LF at byte %d", i)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(msg))
	for sc.Scan() {
		if len(sc.Text()) > 998 { // RFC 5322 §2.1.1
			t.Fatalf("line of %d characters", len(sc.Text()))
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []*multipart.Part
	var bodies [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p) // quoted-printable is decoded by multipart
		if err != nil {
			t.Fatal(err)
		}
		parts, bodies = append(parts, p), append(bodies, b)
	}
	if len(parts) != 2 {
		t.Fatalf("%d parts, want text and report", len(parts))
	}
	if ct := parts[0].Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("first part is %q", ct)
	}
	att := parts[1]
	if ct, _, _ := mime.ParseMediaType(att.Header.Get("Content-Type")); ct != "application/gzip" {
		t.Errorf("attachment is %q", att.Header.Get("Content-Type"))
	}
	disp, dparams, err := mime.ParseMediaType(att.Header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" {
		t.Errorf("Content-Disposition %q: %v", att.Header.Get("Content-Disposition"), err)
	}
	if att.Header.Get("Content-Transfer-Encoding") != "base64" {
		t.Errorf("attachment encoding %q", att.Header.Get("Content-Transfer-Encoding"))
	}
	for l := range strings.Lines(string(bodies[1])) {
		if len(strings.TrimRight(l, "\r\n")) > 76 {
			t.Errorf("base64 line of %d characters", len(l))
		}
	}
	gz, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(bodies[1])))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	xmlDoc, err = io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return m.Header, string(bodies[0]), dparams["filename"], xmlDoc
}

func TestReportMail(t *testing.T) {
	a := storedAggregates(t, day.AddDate(0, 0, 1))["example.com"]
	now := day.Add(30*time.Hour + 5*time.Minute)
	to := []string{"dmarc@example.com", "reports@thirdparty.example"}
	hostileRep := testReporter
	hostileRep.OrgName = "Evil\r\nBcc: victim@example.net"
	hostileA := a
	hostileA.Policy.Domain = "example.com\r\nBcc: victim@example.net"
	longRep := testReporter
	longRep.OrgName = strings.Repeat("Example ", 300)
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("dmarc-reports-%d@example.com", i))
	}
	many = append(many, strings.Repeat("x", 300)+"@example.com") // longer than RFC 5321 allows: left out
	const subject = "Report Domain: example.com Submitter: mx.example.net Report-ID: <"
	tests := []struct {
		name    string
		rep     Reporter
		a       Aggregate
		to      []string
		wantTo  int
		subject string
	}{
		{"plain", testReporter, a, to, 2, subject},
		{"header injection", hostileRep, hostileA, []string{"a@example.com\r\nBcc: victim@example.net"}, 1,
			"Report Domain: example.com__bcc__victim_example.net Submitter: mx.example.net Report-ID: <"},
		// Lines stay within 998 characters (readReportMail checks).
		{"long org name, many recipients", longRep, a, many, 40, subject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fb := Build(tc.rep, tc.a, now)
			gz, filename, err := Encode(tc.rep, fb)
			if err != nil {
				t.Fatal(err)
			}
			msg := ReportMail(tc.rep, fb, gz, filename, tc.to, now)
			h, text, attName, doc := readReportMail(t, msg)

			want, _ := ReportXML(fb)
			if !bytes.Equal(doc, want) {
				t.Errorf("attachment gunzips to\n%s\nwant\n%s", doc, want)
			}
			if attName != filename {
				t.Errorf("attachment file name %q, want %q", attName, filename)
			}
			if got := h.Get("Subject"); got != tc.subject+fb.Metadata.ReportID+">" {
				t.Errorf("Subject %q", got)
			}
			if h.Get("Bcc") != "" {
				t.Errorf("a Bcc header got in: %q", h.Get("Bcc"))
			}
			from, err := h.AddressList("From")
			if err != nil || len(from) != 1 || from[0].Address != tc.rep.Email {
				t.Errorf("From %q: %v", h.Get("From"), err)
			}
			rcpts, err := h.AddressList("To")
			if err != nil || len(rcpts) != tc.wantTo {
				t.Errorf("To %q: %v", h.Get("To"), err)
			}
			if date, err := h.Date(); err != nil || !date.Equal(now) {
				t.Errorf("Date %q: %v", h.Get("Date"), err)
			}
			if !regexp.MustCompile(`^<[0-9a-f]{16}\.[0-9]+@mx\.example\.net>$`).MatchString(h.Get("Message-ID")) {
				t.Errorf("Message-ID %q", h.Get("Message-ID"))
			}
			if h.Get("Auto-Submitted") != "auto-generated" || h.Get("MIME-Version") != "1.0" {
				t.Errorf("Auto-Submitted %q, MIME-Version %q", h.Get("Auto-Submitted"), h.Get("MIME-Version"))
			}
			if !strings.Contains(text, "DMARC aggregate report") || !strings.Contains(text, fb.Metadata.ReportID) {
				t.Errorf("text part:\n%s", text)
			}
		})
	}
	// The plain case's addresses, exactly.
	fb := Build(testReporter, a, now)
	gz, filename, _ := Encode(testReporter, fb)
	h, _, _, _ := readReportMail(t, ReportMail(testReporter, fb, gz, filename, to, now))
	if got, want := h.Get("From"), `"Example Mail" <dmarc-reports@mx.example.net>`; got != want {
		t.Errorf("From %q, want %q", got, want)
	}
	if got, want := h.Get("To"), "<dmarc@example.com>, <reports@thirdparty.example>"; got != want {
		t.Errorf("To %q, want %q", got, want)
	}
}

// FuzzReportMail builds, encodes and mails a report whose identity,
// domains and recipient come from the fuzzer. Property: the mail parses
// with net/mail and mime/multipart, has exactly the header fields written
// (none injected), its attachment gunzips to the report's XML, and the
// file name keeps RFC 7489's grammar.
func FuzzReportMail(f *testing.F) {
	f.Add("Example Mail", "dmarc@mx.example.net", "example.com", "example.com", "dmarc@example.com")
	f.Add("Évil\r\nBcc: x@y", "a@b@c\r\n", "ex!a/mple..com\r\n", "", "a\r\nBcc: x@y")
	f.Add("", "", "", "\x00\xff", "")
	f.Fuzz(func(t *testing.T, org, email, domain, headerFrom, rcpt string) {
		if len(email) > 254 {
			// [dmarc_reports] from: an address longer than RFC 5321
			// allows cannot send mail, and no header line can hold it.
			t.Skip()
		}
		rep := Reporter{OrgName: org, Email: email}
		a := Aggregate{
			Period: Period{Domain: domain, Day: "2026-12-04"},
			Policy: PolicyPublished{Domain: domain, P: "none", Pct: 100},
			Records: []Record{{
				Row:         Row{SourceIP: "192.0.2.1", Count: 1, PolicyEvaluated: PolicyEvaluated{Disposition: "none", DKIM: "fail", SPF: "fail"}},
				Identifiers: Identifiers{HeaderFrom: headerFrom},
			}},
		}
		now := day.Add(30 * time.Hour)
		fb := Build(rep, a, now)
		gz, filename, err := Encode(rep, fb)
		if err != nil {
			t.Fatal(err)
		}
		if !fileNameRE.MatchString(filename) {
			t.Fatalf("file name %q breaks RFC 7489's grammar", filename)
		}
		msg := ReportMail(rep, fb, gz, filename, []string{rcpt}, now)
		h, _, _, doc := readReportMail(t, msg)
		want, _ := ReportXML(fb)
		if !bytes.Equal(doc, want) {
			t.Fatalf("attachment differs from the report")
		}
		names := slices.Sorted(maps.Keys(h))
		wantNames := []string{"Auto-Submitted", "Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To"}
		if !slices.Equal(names, wantNames) {
			t.Fatalf("header fields %v, want %v", names, wantNames)
		}
		for k, vs := range h {
			if len(vs) != 1 {
				t.Fatalf("%s appears %d times", k, len(vs))
			}
		}
	})
}
