package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"vouch/internal/config"
	"vouch/internal/daemon"
	"vouch/internal/dmarcreport"
	"vouch/internal/testutil"
)

// reportsNow is the clock of the reports tests: a day after the last of
// testdata/reports.
var reportsNow = time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)

// useReportStore makes the reports commands read a memory store holding
// testdata/reports/*.xml (the yahoo one as from an unauthenticated
// message) and one malformed message, and returns the config file to pass
// with -config. It checks that the store the command opens is the one the
// config names.
func useReportStore(t *testing.T) string {
	t.Helper()
	st := dmarcreport.NewMemoryStore()
	files, err := filepath.Glob("testdata/reports/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/reports: %v", err)
	}
	ctx := context.Background()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fb dmarcreport.Feedback
		if err := xml.Unmarshal(b, &fb); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		r := dmarcreport.Received{ID: dmarcreport.ReceivedID(&fb), ReceivedAt: reportsNow.Add(-time.Hour),
			MailFrom: fb.Metadata.Email, Authenticated: !strings.Contains(f, "unauthenticated"), Feedback: fb}
		if _, err := st.AddReceived(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddMalformed(ctx, dmarcreport.Malformed{ReceivedAt: reportsNow.Add(-3 * time.Hour),
		MailFrom: "dmarc@broken.example", Reason: "gzip: invalid header", Raw: []byte("not gzip")}); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "reports.db")
	cfgPath := testutil.WriteTemp(t, "vouch.toml", "[dmarc_reports]\nstore = \"bolt\"\npath = \""+dbPath+"\"\n")
	old := openReportStore
	openReportStore = func(cfg *config.Config) (dmarcreport.Store, error) {
		if o := daemon.ReportStoreOptions(cfg); o.Kind != "bolt" || o.Path != dbPath {
			t.Errorf("store options %+v, want bolt at %s", o, dbPath)
		}
		return st, nil
	}
	t.Cleanup(func() { openReportStore = old })
	return cfgPath
}

// TestReportsListGolden runs `vouch reports list` (text and JSON) over
// testdata/reports and compares with testdata/reports/NAME.golden
// (go test ./cmd/vouch -run ReportsListGolden -update rewrites them).
func TestReportsListGolden(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{name: "list", args: nil},
		{name: "list-json", args: []string{"-json"}},
		{name: "list-domain", args: []string{"-domain", "example.org"}},
		{name: "list-since-date", args: []string{"-since", "2026-12-03"}},
		{name: "list-recent", args: []string{"-since", "12h"}},
		{name: "list-empty", args: []string{"-domain", "nothing.example"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := useReportStore(t)
			var stdout, stderr bytes.Buffer
			if code := reportsList(append([]string{"-config", cfg}, tc.args...), &stdout, &stderr, reportsNow); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			testutil.Golden(t, filepath.Join("testdata/reports", tc.name+".golden"), stdout.Bytes(), *updateGolden)
		})
	}
}

func TestReportsViewErrors(t *testing.T) {
	cases := []struct {
		name   string
		run    func([]string, *bytes.Buffer, *bytes.Buffer) int
		args   []string
		code   int
		stderr string
	}{
		{"bad since", listRun, []string{"-since", "yesterday"}, 2, `-since "yesterday": want a date`},
		{"negative since", htmlRun, []string{"-o", "x.html", "-since", "-3d"}, 2, "cannot be negative"},
		{"stray argument", listRun, []string{"example.com"}, 2, `unexpected argument "example.com"`},
		{"html without -o", htmlRun, nil, 2, "-o FILE is required"},
		{"html unwritable", htmlRun, []string{"-o", "/nonexistent/dir/page.html"}, 1, "/nonexistent/dir/page.html"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := useReportStore(t)
			var stdout, stderr bytes.Buffer
			code := tc.run(append([]string{"-config", cfg}, tc.args...), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
}

func listRun(args []string, stdout, stderr *bytes.Buffer) int {
	return reportsList(args, stdout, stderr, reportsNow)
}

func htmlRun(args []string, stdout, stderr *bytes.Buffer) int {
	return reportsHTML(args, stdout, stderr, reportsNow)
}

func TestParseSince(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time
	}{
		{"2026-12-01", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"7d", reportsNow.AddDate(0, 0, -7)},
		{"30d", reportsNow.AddDate(0, 0, -30)},
		{"24h", reportsNow.Add(-24 * time.Hour)},
		{"90m", reportsNow.Add(-90 * time.Minute)},
	}
	for _, tc := range cases {
		got, err := parseSince(tc.in, reportsNow)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "d", "7x", "2026-13-01", "-1h"} {
		if _, err := parseSince(bad, reportsNow); err == nil {
			t.Errorf("parseSince(%q): no error", bad)
		}
	}
}

// TestReportsHTMLChromium writes the page with `vouch reports html`,
// opens it in headless Chromium, and checks what the browser made of it:
// a screenshot of the expected size that is not blank, and a DOM with a
// chart per domain (one bar group per day, two rects each) and a table
// row per source. The screenshot stays in the test's temp dir (logged).
func TestReportsHTMLChromium(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium-headless-shell", "chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		testutil.Require(t, "chromium-headless-shell (apt install chromium-headless-shell)")
		return
	}
	cfg := useReportStore(t)
	dir := t.TempDir()
	pagePath := filepath.Join(dir, "dmarc.html")
	var stdout, stderr bytes.Buffer
	if code := reportsHTML([]string{"-config", cfg, "-o", pagePath}, &stdout, &stderr, reportsNow); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "wrote "+pagePath+": 4 reports about 2 domains") {
		t.Errorf("stdout: %s", stdout.String())
	}

	shot := filepath.Join(dir, "dmarc.png")
	common := []string{"--no-sandbox", "--headless", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=" + filepath.Join(dir, "profile")}
	url := "file://" + pagePath
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, browser, append(common, "--screenshot="+shot, "--window-size=1200,1600", url)...).CombinedOutput(); err != nil {
		t.Fatalf("%s --screenshot: %v\n%s", browser, err, out)
	}
	t.Logf("screenshot: %s", shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 1600 {
		t.Errorf("screenshot is %dx%d, want 1200x1600", b.Dx(), b.Dy())
	}
	colours := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	// Text, two bar colours, flags, table borders: a rendered page has
	// many; a blank or failed one has one or two.
	if len(colours) < 10 {
		t.Errorf("screenshot has %d colours: the page did not render", len(colours))
	}

	dom, err := exec.CommandContext(ctx, browser, append(common, "--dump-dom", url)...).Output()
	if err != nil {
		t.Fatalf("%s --dump-dom: %v", browser, err)
	}
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatalf("DOM dump does not parse: %v", err)
	}
	// example.com: reports on 12-01, 12-02 and 12-04 (12-03 shown empty);
	// example.org: 12-03. Sources: 192.0.2.10 from google and from
	// Microsoft, 198.51.100.7, 2001:db8::25 and 192.0.2.77; 203.0.113.50.
	wantDays := [][]string{{"2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"}, {"2026-12-03"}}
	wantRows := [][]string{{"192.0.2.10", "2001:db8::25", "198.51.100.7", "192.0.2.10", "192.0.2.77"}, {"203.0.113.50"}}
	sections := findAll(doc, func(n *html.Node) bool { return n.Data == "section" && attr(n, "class") == "domain" })
	if len(sections) != 2 {
		t.Fatalf("%d domain sections in the DOM, want 2:\n%s", len(sections), dom)
	}
	for i, sec := range sections {
		svgs := findAll(sec, func(n *html.Node) bool { return n.Data == "svg" })
		if len(svgs) != 1 {
			t.Fatalf("section %d: %d svg charts", i, len(svgs))
		}
		var days []string
		for _, g := range findAll(svgs[0], func(n *html.Node) bool { return n.Data == "g" && attr(n, "class") == "day" }) {
			days = append(days, attr(g, "data-day"))
			if rects := findAll(g, func(n *html.Node) bool { return n.Data == "rect" }); len(rects) != 2 {
				t.Errorf("section %d day %s: %d rects, want pass and fail", i, attr(g, "data-day"), len(rects))
			}
			if titles := findAll(g, func(n *html.Node) bool { return n.Data == "title" }); len(titles) != 1 {
				t.Errorf("section %d day %s: no <title> tooltip", i, attr(g, "data-day"))
			}
		}
		if strings.Join(days, " ") != strings.Join(wantDays[i], " ") {
			t.Errorf("section %d: day groups %v, want %v", i, days, wantDays[i])
		}
		var ips []string
		for _, tr := range findAll(sec, func(n *html.Node) bool { return n.Data == "tr" && strings.HasPrefix(attr(n, "class"), "source") }) {
			if td := findAll(tr, func(n *html.Node) bool { return n.Data == "td" }); len(td) > 0 {
				ips = append(ips, text(td[0]))
			}
		}
		if strings.Join(ips, " ") != strings.Join(wantRows[i], " ") {
			t.Errorf("section %d: source rows %v, want %v", i, ips, wantRows[i])
		}
	}
	if got := len(findAll(doc, func(n *html.Node) bool { return n.Data == "script" })); got != 0 {
		t.Errorf("%d script elements in the DOM", got)
	}
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.TrimSpace(b.String())
}
