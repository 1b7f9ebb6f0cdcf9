package dmarcreport

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// rec is one record: n messages from ip with the aligned DKIM and SPF
// results and the disposition; dkim are "domain/selector=result".
func rec(ip string, n int64, dkim, spf, disp string, sigs ...string) Record {
	r := Record{Row: Row{SourceIP: ip, Count: n, PolicyEvaluated: PolicyEvaluated{Disposition: disp, DKIM: dkim, SPF: spf}},
		Identifiers: Identifiers{HeaderFrom: "example.com"},
		AuthResults: AuthResults{SPF: []SPFAuthResult{{Domain: "example.com", Scope: "mfrom", Result: spf}}}}
	for _, s := range sigs {
		ds, res, _ := strings.Cut(s, "=")
		d, sel, _ := strings.Cut(ds, "/")
		r.AuthResults.DKIM = append(r.AuthResults.DKIM, DKIMAuthResult{Domain: d, Selector: sel, Result: res})
	}
	return r
}

// report is a report of org about domain for the UTC day, authenticated
// or not.
func report(org, domain, day string, auth bool, recs ...Record) Received {
	t, err := time.Parse(DayFormat, day)
	if err != nil {
		panic(err)
	}
	fb := Feedback{Metadata: ReportMetadata{OrgName: org, Email: "noreply@" + org, ReportID: org + day,
		DateRange: DateRange{Begin: t.Unix(), End: t.Unix() + 86399}},
		Policy: PolicyPublished{Domain: domain, P: "reject"}, Records: recs}
	return Received{ID: ReceivedID(&fb), Authenticated: auth, Feedback: fb}
}

// sourceLines is the summary flattened, one line per source, in order.
func sourceLines(s ReceivedSummary) []string {
	var out []string
	for _, d := range s.Domains {
		for _, o := range d.Orgs {
			for _, src := range o.Sources {
				var disp []string
				for _, k := range []string{"none", "quarantine", "reject"} {
					if n := src.Dispositions[k]; n > 0 {
						disp = append(disp, fmt.Sprintf("%s=%d", k, n))
					}
				}
				out = append(out, fmt.Sprintf("%s %s %s msgs=%d dmarc=%d/%.1f spf=%d/%.1f dkim=%d/%.1f unauth=%d %s %v",
					d.Domain, o.Org, src.IP, src.Messages, src.DMARCPass, src.DMARCPct, src.SPFAligned, src.SPFPct,
					src.DKIMAligned, src.DKIMPct, src.Unauthenticated, strings.Join(disp, ","), src.Flags))
			}
		}
	}
	return out
}

func TestSummarize(t *testing.T) {
	cases := []struct {
		name    string
		reports []Received
		want    []string
	}{
		{name: "all pass",
			reports: []Received{report("google.com", "example.com", "2026-12-01", true,
				rec("192.0.2.1", 10, "pass", "pass", "none", "example.com/s1=pass"))},
			want: []string{"example.com google.com 192.0.2.1 msgs=10 dmarc=10/100.0 spf=10/100.0 dkim=10/100.0 unauth=0 none=10 []"}},
		{name: "unknown source",
			reports: []Received{report("google.com", "example.com", "2026-12-01", true,
				rec("203.0.113.9", 4, "fail", "fail", "reject"))},
			want: []string{"example.com google.com 203.0.113.9 msgs=4 dmarc=0/0.0 spf=0/0.0 dkim=0/0.0 unauth=0 reject=4 [unknown source sending as you]"}},
		{name: "dkim breaks, spf carries it",
			reports: []Received{report("google.com", "example.com", "2026-12-01", true,
				rec("192.0.2.2", 7, "fail", "pass", "none", "example.com/old=fail"))},
			want: []string{"example.com google.com 192.0.2.2 msgs=7 dmarc=7/100.0 spf=7/100.0 dkim=0/0.0 unauth=0 none=7 [DKIM breaks]"}},
		{name: "partly failing, rounded down",
			reports: []Received{report("google.com", "example.com", "2026-12-01", true,
				rec("192.0.2.3", 2000, "pass", "pass", "none"),
				rec("192.0.2.3", 1, "fail", "fail", "quarantine"))},
			want: []string{"example.com google.com 192.0.2.3 msgs=2001 dmarc=2000/99.9 spf=2000/99.9 dkim=2000/99.9 unauth=0 none=2000,quarantine=1 [partly failing]"}},
		{name: "dkim breaks on some, others fail",
			reports: []Received{report("google.com", "example.com", "2026-12-01", true,
				rec("192.0.2.4", 3, "pass", "pass", "none"),
				rec("192.0.2.4", 1, "fail", "pass", "none"),
				rec("192.0.2.4", 1, "fail", "fail", "reject"))},
			want: []string{"example.com google.com 192.0.2.4 msgs=5 dmarc=4/80.0 spf=4/80.0 dkim=3/60.0 unauth=0 none=4,reject=1 [DKIM breaks partly failing]"}},
		{name: "unauthenticated report counted and marked",
			reports: []Received{
				report("google.com", "example.com", "2026-12-01", true, rec("192.0.2.1", 5, "pass", "pass", "none")),
				report("Google.com", "example.com", "2026-12-02", false, rec("192.0.2.1", 2, "pass", "pass", "none"))},
			want: []string{"example.com google.com 192.0.2.1 msgs=7 dmarc=7/100.0 spf=7/100.0 dkim=7/100.0 unauth=2 none=7 []"}},
		{name: "order: domains, orgs, sources by messages then numeric IP",
			reports: []Received{
				report("yahoo.com", "example.com", "2026-12-01", true,
					rec("10.0.0.10", 5, "pass", "pass", "none"),
					rec("10.0.0.9", 5, "pass", "pass", "none"),
					rec("2001:db8::1", 5, "pass", "pass", "none"),
					rec("10.0.0.1", 1, "pass", "pass", "none")),
				report("google.com", "example.com", "2026-12-01", true, rec("10.0.0.1", 100, "pass", "pass", "none")),
				report("google.com", "example.org", "2026-12-01", true, rec("10.0.0.1", 1, "pass", "pass", "none")),
				report("Microsoft Corporation", "EXAMPLE.COM", "2026-12-01", true, rec("10.0.0.1", 16, "pass", "pass", "none"))},
			want: []string{
				"example.com google.com 10.0.0.1 msgs=100 dmarc=100/100.0 spf=100/100.0 dkim=100/100.0 unauth=0 none=100 []",
				"example.com Microsoft Corporation 10.0.0.1 msgs=16 dmarc=16/100.0 spf=16/100.0 dkim=16/100.0 unauth=0 none=16 []",
				"example.com yahoo.com 10.0.0.9 msgs=5 dmarc=5/100.0 spf=5/100.0 dkim=5/100.0 unauth=0 none=5 []",
				"example.com yahoo.com 10.0.0.10 msgs=5 dmarc=5/100.0 spf=5/100.0 dkim=5/100.0 unauth=0 none=5 []",
				"example.com yahoo.com 2001:db8::1 msgs=5 dmarc=5/100.0 spf=5/100.0 dkim=5/100.0 unauth=0 none=5 []",
				"example.com yahoo.com 10.0.0.1 msgs=1 dmarc=1/100.0 spf=1/100.0 dkim=1/100.0 unauth=0 none=1 []",
				"example.org google.com 10.0.0.1 msgs=1 dmarc=1/100.0 spf=1/100.0 dkim=1/100.0 unauth=0 none=1 []",
			}},
		{name: "hostile counts: negative adds nothing, huge is capped",
			reports: []Received{report("evil.example", "example.com", "2026-12-01", false,
				rec("192.0.2.66", -50, "fail", "fail", "none"),
				rec("192.0.2.66", 1<<62, "fail", "fail", "none"),
				rec("192.0.2.66", 1<<62, "fail", "fail", "none"))},
			want: []string{"example.com evil.example 192.0.2.66 msgs=2000000000 dmarc=0/0.0 spf=0/0.0 dkim=0/0.0 unauth=2000000000 none=2000000000 [unknown source sending as you]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := sourceLines(Summarize(tc.reports, nil))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestSummarizeTotals checks the sums above the sources, the day series,
// what was seen per source, and the malformed list.
func TestSummarizeTotals(t *testing.T) {
	s := Summarize([]Received{
		report("google.com", "example.com", "2026-12-01", true,
			rec("192.0.2.1", 8, "pass", "pass", "none", "example.com/s1=pass", "esp.example/x=pass"),
			rec("192.0.2.1", 2, "fail", "pass", "none", "example.com/s1=fail")),
		report("google.com", "example.com", "2026-12-03", false,
			rec("203.0.113.5", 3, "fail", "fail", "reject")),
	}, []Malformed{{ReceivedAt: time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC), MailFrom: "x@y", Reason: "broken gzip", Raw: []byte("zz")}})
	if s.Reports != 2 || len(s.Domains) != 1 {
		t.Fatalf("reports %d, domains %d", s.Reports, len(s.Domains))
	}
	d := s.Domains[0]
	if d.Messages != 13 || d.DMARCPass != 10 || d.SPFAligned != 10 || d.DKIMAligned != 8 || d.DKIMBroken != 2 || d.Reports != 2 {
		t.Errorf("domain counts %+v", d.Counts)
	}
	if d.Dispositions["none"] != 10 || d.Dispositions["reject"] != 3 {
		t.Errorf("dispositions %v", d.Dispositions)
	}
	wantDays := []DayCount{{"2026-12-01", 10, 0}, {"2026-12-02", 0, 0}, {"2026-12-03", 0, 3}}
	if !slices.Equal(d.Days, wantDays) {
		t.Errorf("days %v, want %v", d.Days, wantDays)
	}
	o := d.Orgs[0]
	if o.Reports != 2 || o.Unauthenticated != 1 || o.Email != "noreply@google.com" {
		t.Errorf("org %+v", o)
	}
	src := o.Sources[0]
	wantDKIM := []AuthSeen{
		{Domain: "esp.example", Selector: "x", Result: "pass", Messages: 8},
		{Domain: "example.com", Selector: "s1", Result: "pass", Messages: 8},
		{Domain: "example.com", Selector: "s1", Result: "fail", Messages: 2},
	}
	if !slices.Equal(src.DKIM, wantDKIM) || !slices.Equal(src.HeaderFrom, []string{"example.com"}) {
		t.Errorf("dkim %v, header_from %v", src.DKIM, src.HeaderFrom)
	}
	if len(src.SPF) != 1 || src.SPF[0] != (AuthSeen{Domain: "example.com", Scope: "mfrom", Result: "pass", Messages: 10}) {
		t.Errorf("spf %v", src.SPF)
	}
	if !s.First.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || !s.Last.Equal(time.Date(2026, 12, 3, 23, 59, 59, 0, time.UTC)) {
		t.Errorf("first %v last %v", s.First, s.Last)
	}
	if len(s.Malformed) != 1 || s.Malformed[0].Reason != "broken gzip" {
		t.Errorf("malformed %v", s.Malformed)
	}
}

// TestDaySeriesBounded: a report whose begin is decades before the others
// (forged or broken) does not make a chart of thousands of days.
func TestDaySeriesBounded(t *testing.T) {
	s := Summarize([]Received{
		report("a.example", "example.com", "1990-01-01", false, rec("192.0.2.1", 1, "fail", "fail", "none")),
		report("b.example", "example.com", "2026-12-01", true, rec("192.0.2.2", 1, "pass", "pass", "none")),
	}, nil)
	days := s.Domains[0].Days
	if len(days) != maxChartDays || days[len(days)-1] != (DayCount{"2026-12-01", 1, 0}) {
		t.Errorf("%d days, last %v", len(days), days[len(days)-1])
	}
}

// FuzzSummarize feeds reports (XML, as a receiver could send anything) to
// Summarize and WriteHTML: the sums agree at every level, and the page
// keeps its structure whatever the strings (no element from the report:
// no script, no event attribute, one bar group per day and one row per
// source).
func FuzzSummarize(f *testing.F) {
	f.Add(`<feedback><report_metadata><org_name>google.com</org_name><report_id>1</report_id><date_range><begin>1796083200</begin><end>1796169599</end></date_range></report_metadata><policy_published><domain>example.com</domain><p>reject</p></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>5</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim><domain>example.com</domain><selector>s</selector><result>pass</result></dkim></auth_results></record></feedback>`, true)
	f.Add(`<feedback><report_metadata><org_name>&lt;script&gt;alert(1)&lt;/script&gt;</org_name><date_range><begin>-5</begin><end>9</end></date_range></report_metadata><policy_published><domain>"'&gt;&lt;img src=x onerror=alert(1)&gt;</domain></policy_published><record><row><source_ip>&lt;/svg&gt;</source_ip><count>-3</count><policy_evaluated><disposition>&lt;b&gt;</disposition></policy_evaluated></row></record><record><row><source_ip>::1</source_ip><count>9223372036854775807</count></row></record></feedback>`, false)
	f.Fuzz(func(t *testing.T, doc string, auth bool) {
		var fb Feedback
		if xml.Unmarshal([]byte(doc), &fb) != nil {
			return
		}
		s := Summarize([]Received{{ID: ReceivedID(&fb), Authenticated: auth, Feedback: fb}}, nil)
		if len(s.Domains) != 1 {
			t.Fatalf("%d domains for one report", len(s.Domains))
		}
		d := s.Domains[0]
		var orgSum, srcSum, daySum, dispSum int64
		sources := 0
		for _, o := range d.Orgs {
			orgSum += o.Messages
			for _, src := range o.Sources {
				sources++
				srcSum += src.Messages
				if src.DMARCPass > src.Messages || src.DMARCPct < 0 || src.DMARCPct > 100 {
					t.Errorf("source %q: %d of %d pass, %.1f%%", src.IP, src.DMARCPass, src.Messages, src.DMARCPct)
				}
			}
		}
		for _, dc := range d.Days {
			daySum += dc.Pass + dc.Fail
		}
		for _, n := range d.Dispositions {
			dispSum += n
		}
		if orgSum != d.Messages || srcSum != d.Messages || daySum != d.Messages || dispSum != d.Messages {
			t.Errorf("domain %d messages; orgs %d, sources %d, days %d, dispositions %d", d.Messages, orgSum, srcSum, daySum, dispSum)
		}
		var buf bytes.Buffer
		if err := WriteHTML(&buf, s, pageNow); err != nil {
			t.Fatal(err)
		}
		page, err := html.Parse(&buf)
		if err != nil {
			t.Fatal(err)
		}
		days, rows := 0, 0
		for n := range page.Descendants() {
			if n.Type != html.ElementNode {
				continue
			}
			if n.Data == "script" || n.Data == "img" || n.Data == "iframe" {
				t.Errorf("<%s> element in the page", n.Data)
			}
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("event attribute %s on <%s>", a.Key, n.Data)
				}
				if a.Key == "class" && a.Val == "day" {
					days++
				}
				if a.Key == "class" && strings.HasPrefix(a.Val, "source") && n.Data == "tr" {
					rows++
				}
			}
		}
		if days != len(d.Days) || rows != sources {
			t.Errorf("page has %d day groups and %d source rows, want %d and %d", days, rows, len(d.Days), sources)
		}
	})
}
