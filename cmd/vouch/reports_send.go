package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"vouch/internal/config"
	"vouch/internal/daemon"
	"vouch/internal/dmarcreport"
)

// Exit statuses of `vouch reports send`.
const (
	sendOK    = 0
	sendError = 1
	sendRetry = 3 // some reports wait for a retry
)

// reportsSend is `vouch reports send`: the outgoing DMARC aggregate
// reports now, for every recorded row not yet reported, today's included.
func reportsSend(args []string, stdout, stderr io.Writer, now time.Time) int {
	fs := newFlags("reports send", help{
		usage: "vouch reports send [-config FILE] [-dry-run DIR]",
		about: "Builds the outgoing DMARC aggregate reports now, one per domain and UTC day,\n" +
			"covering every recorded message not yet reported (today's too, up to now),\n" +
			"and mails them through [dmarc_reports] smtp to the rua= addresses of each\n" +
			"domain, as the daemon does once a day at send_at: size limits (!10m) and\n" +
			"the external-destination check (RFC 7489 §7.1) apply, and a report that\n" +
			"cannot be delivered now stays for the next run. Prints one line per report.\n" +
			"With -dry-run DIR, writes each report's .xml.gz file into DIR instead,\n" +
			"sends nothing and marks nothing as reported (no DNS lookups either).",
		exits:   "0 every report was sent (or written), or dropped for the reason printed\n1 the configuration or the store cannot be used\n3 some reports could not be delivered now: they stay for the next run",
		example: "vouch reports send -config /etc/vouch/vouch.toml -dry-run /tmp/reports",
	}, stdout, stderr)
	configPath := fs.String("config", "", "config file (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	dryRun := fs.String("dry-run", "", "write the reports into this `DIR` instead of mailing them; marks nothing as reported")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	cfg, err := daemon.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "vouch reports send: %v\n", err)
		return sendError
	}
	store, err := dmarcreport.OpenStore(daemon.ReportStoreOptions(cfg))
	if err != nil {
		fmt.Fprintf(stderr, "vouch reports send: %v\n", err)
		return sendError
	}
	defer store.Close()
	return sendReports(cfg, store, *dryRun, stdout, stderr, now)
}

// sendReports is reportsSend once the store is open.
func sendReports(cfg *config.Config, store dmarcreport.Store, dryRun string, stdout, stderr io.Writer, now time.Time) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "vouch reports send: %v\n", err)
		return sendError
	}
	if dryRun != "" {
		if st, err := os.Stat(dryRun); err != nil || !st.IsDir() {
			return fail(fmt.Errorf("-dry-run %s: not a directory", dryRun))
		}
	}
	// Warnings (a rua= URI not used, a report dropped) go to stderr; the
	// one line per report to stdout.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := daemon.NewReportSender(cfg, store, log, func() time.Time { return now })
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	before := now.Add(24 * time.Hour) // today's rows too
	var sum dmarcreport.Summary
	if dryRun != "" {
		sum, err = s.DryRun(ctx, before, dryRun)
	} else {
		sum, err = s.SendDue(ctx, before)
	}
	for _, r := range sum.Results {
		fmt.Fprintln(stdout, resultLine(r))
	}
	if err != nil {
		return fail(err)
	}
	if len(sum.Results) == 0 {
		fmt.Fprintln(stdout, "no report due")
	}
	if sum.Count(dmarcreport.Retry) > 0 {
		return sendRetry
	}
	return sendOK
}

// resultLine is one report in the output: domain, day, what became of it
// and how many messages it covers.
func resultLine(r dmarcreport.Result) string {
	line := fmt.Sprintf("%s %s: %s", r.Domain, r.Day, r.Outcome)
	switch r.Outcome {
	case dmarcreport.Sent:
		line += " to " + strings.Join(r.To, ", ")
	case dmarcreport.Written:
		line += " " + r.File + " (for " + strings.Join(r.To, ", ") + ")"
	case dmarcreport.Busy:
		line += " (another vouch is sending it)"
	default:
		line += ": " + r.Reason
	}
	if r.Messages == 1 {
		return line + " [1 message]"
	}
	return fmt.Sprintf("%s [%d messages]", line, r.Messages)
}
