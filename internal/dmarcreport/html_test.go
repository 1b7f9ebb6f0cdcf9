package dmarcreport

import (
	"bytes"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vouch/internal/testutil"
)

var updateGolden = flag.Bool("update", false, "rewrite internal/dmarcreport/testdata/golden")

var pageNow = time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)

// sampleReports are a week of reports from three reporters: a clean
// server, one whose DKIM breaks, an unknown source, and an unauthenticated
// report.
func sampleReports() []Received {
	return []Received{
		report("google.com", "example.com", "2026-12-01", true,
			rec("192.0.2.10", 120, "pass", "pass", "none", "example.com/s2026=pass"),
			rec("198.51.100.7", 3, "fail", "fail", "reject")),
		report("google.com", "example.com", "2026-12-02", true,
			rec("192.0.2.10", 140, "pass", "pass", "none", "example.com/s2026=pass"),
			rec("192.0.2.20", 12, "fail", "pass", "none", "example.com/old=fail")),
		report("Microsoft Corporation", "example.com", "2026-12-04", true,
			rec("192.0.2.10", 60, "pass", "pass", "none", "example.com/s2026=pass"),
			rec("192.0.2.20", 5, "pass", "pass", "none", "example.com/s2026=pass"),
			rec("192.0.2.20", 2, "fail", "fail", "quarantine")),
		report("mail.example.net", "example.org", "2026-12-03", false,
			rec("203.0.113.50", 9, "fail", "fail", "none")),
	}
}

// TestWriteHTMLGolden compares the page with testdata/golden/page.html
// (go test ./internal/dmarcreport -run HTMLGolden -update rewrites it).
func TestWriteHTMLGolden(t *testing.T) {
	s := Summarize(sampleReports(), []Malformed{{ReceivedAt: pageNow.Add(-time.Hour), MailFrom: "dmarc@bad.example", Reason: "gzip: invalid header"}})
	s.Since = pageNow.AddDate(0, 0, -30)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, s, pageNow); err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, filepath.Join("testdata", "golden", "page.html"), buf.Bytes(), *updateGolden)
	// What the page must have whatever its layout: no external asset, the
	// CSP, one bar group per day (12-01 to 12-04) and the flags.
	page := buf.String()
	for _, want := range []string{
		`content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`,
		`<g class="day" data-day="2026-12-03">`,
		`<span class="flag">unknown source sending as you</span>`,
		`<span class="flag">DKIM breaks</span>`,
		`(unauthenticated reports)`,
		`gzip: invalid header`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if n := strings.Count(page, `<g class="day"`); n != 4+1 {
		t.Errorf("%d day groups, want 5 (4 for example.com, 1 for example.org)", n)
	}
	for _, bad := range []string{"<script", "src=\"http", "href=\"http", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q: not self-contained", bad)
		}
	}
}

// TestWriteHTMLHostile: strings from a report (anyone can send one) are
// escaped wherever they land: text, attributes, SVG titles.
func TestWriteHTMLHostile(t *testing.T) {
	const evil = `<script>alert(1)</script>"'><img src=x onerror=alert(2)>`
	r := report(evil, "example.com", "2026-12-01", false,
		rec(evil, 1, "fail", "fail", evil, evil+"/"+evil+"="+evil))
	r.Feedback.Records[0].Identifiers.HeaderFrom = evil
	s := Summarize([]Received{r}, []Malformed{{MailFrom: evil, Reason: evil}})
	s.Since = pageNow.AddDate(0, 0, -1)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, s, pageNow); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	// A tag from the report would start with a raw "<": escaped, only the
	// page's own tags remain.
	for _, bad := range []string{"<script", "<img"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("page contains %q unescaped:\n%s", bad, page)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the org name is not shown escaped:\n%s", page)
	}
}

func TestLayoutChart(t *testing.T) {
	cases := []struct {
		name    string
		days    []DayCount
		top     string // the highest tick
		labeled int    // days with a label under the bar
	}{
		{name: "none", days: nil, top: "4"},
		{name: "one day", days: []DayCount{{"2026-12-01", 3, 0}}, top: "4", labeled: 1},
		{name: "round up", days: []DayCount{{"2026-12-01", 90, 7}, {"2026-12-02", 0, 0}}, top: "200", labeled: 2},
		{name: "thirty days labelled every third", days: make([]DayCount, 30), top: "4", labeled: 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.days {
				if tc.days[i].Day == "" {
					tc.days[i].Day = time.Date(2026, 11, 1+i, 0, 0, 0, 0, time.UTC).Format(DayFormat)
				}
			}
			c := layoutChart(tc.days)
			if len(c.Bars) != len(tc.days) {
				t.Fatalf("%d bars for %d days", len(c.Bars), len(tc.days))
			}
			if got := c.YTicks[len(c.YTicks)-1].Label; got != tc.top {
				t.Errorf("top tick %s, want %s", got, tc.top)
			}
			labeled := 0
			for _, b := range c.Bars {
				if b.Label != "" {
					labeled++
				}
			}
			if labeled != tc.labeled {
				t.Errorf("%d labels, want %d", labeled, tc.labeled)
			}
		})
	}
}
