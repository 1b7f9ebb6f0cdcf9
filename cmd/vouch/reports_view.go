package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"vouch/internal/config"
	"vouch/internal/daemon"
	"vouch/internal/dmarcreport"
)

// `vouch reports list` and `vouch reports html`: the aggregate reports
// receivers sent about the admin's domains, as text, JSON or one HTML page.

// openReportStore opens the [dmarc_reports] store (tests put a memory
// store here).
var openReportStore = func(cfg *config.Config) (dmarcreport.Store, error) {
	return dmarcreport.OpenStore(daemon.ReportStoreOptions(cfg))
}

const defaultSince = "30d"

// viewFlags are the flags list and html share.
type viewFlags struct {
	config, domain, since *string
}

func addViewFlags(fs *cmdFlags) viewFlags {
	return viewFlags{
		config: fs.String("config", "", "config file (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)"),
		domain: fs.String("domain", "", "only the reports about this domain (default: every domain)"),
		since:  fs.String("since", defaultSince, "reports whose period ends after T: a UTC date (2026-12-01) or a duration back\nfrom now (7d, 24h)"),
	}
}

// summary reads the reports since since the flags select, and sums them.
func (v viewFlags) summary(since time.Time) (dmarcreport.ReceivedSummary, error) {
	cfg, err := daemon.Load(*v.config)
	if err != nil {
		return dmarcreport.ReceivedSummary{}, err
	}
	st, err := openReportStore(cfg)
	if err != nil {
		return dmarcreport.ReceivedSummary{}, fmt.Errorf("[dmarc_reports] store: %w", err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	received, err := st.ListReceived(ctx, strings.TrimSuffix(*v.domain, "."), since)
	if err != nil {
		return dmarcreport.ReceivedSummary{}, fmt.Errorf("[dmarc_reports] store: %w", err)
	}
	malformed, err := st.ListMalformed(ctx, since)
	if err != nil {
		return dmarcreport.ReceivedSummary{}, fmt.Errorf("[dmarc_reports] store: %w", err)
	}
	s := dmarcreport.Summarize(received, malformed)
	s.Since = since
	return s, nil
}

// parseSince reads -since: a UTC date, a number of days ("7d") or a Go
// duration ("36h").
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(dmarcreport.DayFormat, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return time.Time{}, fmt.Errorf("-since %q: want a date (2026-12-01) or a duration (7d, 24h)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return time.Time{}, fmt.Errorf("-since %q: want a date (2026-12-01) or a duration (7d, 24h)", s)
		}
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("-since %q: a duration back from now cannot be negative", s)
	}
	return now.Add(-d).UTC(), nil
}

func reportsList(args []string, stdout, stderr io.Writer, now time.Time) int {
	fs := newFlags("reports list", help{
		usage: "vouch reports list [-config FILE] [-domain D] [-since T] [-json]",
		about: "Lists the DMARC aggregate reports receivers (Google, Microsoft, Yahoo...)\n" +
			"sent to your rua mailboxes ([dmarc_reports] rua_mailboxes): per domain,\n" +
			"per reporting organisation and per source IP, the messages, the DMARC,\n" +
			"SPF aligned and DKIM aligned pass rates and the dispositions. Sources\n" +
			"are flagged \"unknown source sending as you\" (no message passed SPF or\n" +
			"DKIM aligned), \"DKIM breaks\" (SPF passed, DKIM did not: a wrong key or\n" +
			"a forwarder) and \"partly failing\". Reports that arrived in messages\n" +
			"failing DMARC are counted but marked: they may be forged.",
		exits:   "0 listed\n1 the configuration or the store cannot be read",
		example: "vouch reports list -domain example.com -since 7d",
	}, stdout, stderr)
	v := addViewFlags(fs)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	since, err := parseSince(*v.since, now)
	if err != nil {
		return fs.usageError("%v", err)
	}
	s, err := v.summary(since)
	if err != nil {
		return viewFail(stderr, "reports list", err)
	}
	if *asJSON {
		if err := writeJSON(stdout, s); err != nil {
			return viewFail(stderr, "reports list", err)
		}
		return 0
	}
	printSummary(stdout, s)
	return 0
}

func reportsHTML(args []string, stdout, stderr io.Writer, now time.Time) int {
	fs := newFlags("reports html", help{
		usage: "vouch reports html -o FILE [-config FILE] [-domain D] [-since T]",
		about: "Writes what vouch reports list shows as one self-contained HTML page\n" +
			"(no scripts, no external assets): per domain a chart of the messages\n" +
			"passing and failing DMARC per day, and a table of the sources with\n" +
			"their pass rates and flags.",
		exits:   "0 written\n1 the configuration or the store cannot be read, or FILE cannot be written",
		example: "vouch reports html -o /var/www/dmarc.html -since 90d",
	}, stdout, stderr)
	v := addViewFlags(fs)
	out := fs.String("o", "", "the HTML file to write (required)")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	if *out == "" {
		return fs.usageError("-o FILE is required")
	}
	since, err := parseSince(*v.since, now)
	if err != nil {
		return fs.usageError("%v", err)
	}
	s, err := v.summary(since)
	if err != nil {
		return viewFail(stderr, "reports html", err)
	}
	var buf bytes.Buffer
	if err := dmarcreport.WriteHTML(&buf, s, now); err != nil {
		return viewFail(stderr, "reports html", err)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return viewFail(stderr, "reports html", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d reports about %d domains since %s\n", *out, s.Reports, len(s.Domains), s.Since.Format(dmarcreport.DayFormat))
	return 0
}

// viewFail is fail for a command with injected stderr.
func viewFail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "vouch %s: %s\n", cmd, strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "\n  "))
	return 1
}

// printSummary is the text of `vouch reports list`: a block per domain,
// a line per reporter, a line per source under it.
func printSummary(w io.Writer, s dmarcreport.ReceivedSummary) {
	since := s.Since.Format(dmarcreport.DayFormat)
	if s.Reports == 0 {
		fmt.Fprintf(w, "no DMARC aggregate reports received since %s\n", since)
	} else {
		first, last := s.Covered()
		fmt.Fprintf(w, "DMARC aggregate reports since %s: %s covering %s to %s\n", since, plural(s.Reports, "report"), first, last)
	}
	for _, d := range s.Domains {
		fmt.Fprintf(w, "\n%s: %d messages in %s; DMARC pass %.1f%%, SPF aligned %.1f%%, DKIM aligned %.1f%%; %s\n",
			d.Domain, d.Messages, plural(d.Reports, "report"), d.DMARCPct, d.SPFPct, d.DKIMPct, d.DispositionText())
		ipWidth := 0
		for _, o := range d.Orgs {
			for _, src := range o.Sources {
				ipWidth = max(ipWidth, len(src.IP))
			}
		}
		for _, o := range d.Orgs {
			fmt.Fprintf(w, "  %s <%s>: %d messages in %s", o.Org, o.Email, o.Messages, plural(o.Reports, "report"))
			if o.Unauthenticated > 0 {
				fmt.Fprintf(w, " (%d unauthenticated: may be forged)", o.Unauthenticated)
			}
			fmt.Fprintln(w)
			for _, src := range o.Sources {
				fmt.Fprintf(w, "    %-*s %9d msgs  DMARC %5.1f%%  SPF %5.1f%%  DKIM %5.1f%%  %s%s\n", ipWidth,
					src.IP, src.Messages, src.DMARCPct, src.SPFPct, src.DKIMPct, src.DispositionText(), flagText(src))
				if len(src.Flags) > 0 {
					fmt.Fprintf(w, "      from: %s; dkim: %s; spf: %s\n", strings.Join(src.HeaderFrom, ", "),
						orNone(dmarcreport.AuthText(src.DKIM)), orNone(dmarcreport.AuthText(src.SPF)))
				}
			}
		}
	}
	if len(s.Malformed) > 0 {
		fmt.Fprintf(w, "\n%s could not be read (kept in the store):\n", plural(len(s.Malformed), "report message"))
		for _, m := range s.Malformed {
			fmt.Fprintf(w, "  %s from %s: %s\n", m.ReceivedAt.Format("2006-01-02 15:04 UTC"), m.MailFrom, m.Reason)
		}
	}
}

func flagText(src dmarcreport.SourceSummary) string {
	var b strings.Builder
	for _, f := range src.Flags {
		b.WriteString("  ! " + f)
	}
	if src.Unauthenticated > 0 {
		fmt.Fprintf(&b, "  (%d from unauthenticated reports)", src.Unauthenticated)
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// plural is "1 report", "2 reports".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
