package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// runReports is `vouch reports list|html|send` (DMARC aggregate reports,
// [dmarc_reports]). Each subcommand parses its own flags.
func runReports(args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Print(reportsUsage)
			return 0
		}
		fmt.Fprintf(os.Stderr, "vouch reports: a subcommand is required: list, html or send\n\n%s", reportsUsage)
		return 2
	}
	sub, rest := args[0], args[1:]
	now := time.Now()
	switch sub {
	case "list":
		return reportsList(rest, os.Stdout, os.Stderr, now)
	case "html":
		return reportsHTML(rest, os.Stdout, os.Stderr, now)
	case "send":
		return reportsSend(rest, os.Stdout, os.Stderr, now)
	}
	fmt.Fprintf(os.Stderr, "vouch reports: unknown subcommand %q: list, html or send\n\n%s", sub, reportsUsage)
	return 2
}

const reportsUsage = `usage: vouch reports list|html|send [flags]

  list   the aggregate reports receivers sent about your domains: per domain,
         reporter and source IP, messages and SPF/DKIM pass rates
  html   the same as one self-contained HTML page with a chart per day
  send   build and mail the outgoing reports now (-dry-run DIR writes them)

Run vouch reports SUBCOMMAND -h for its flags.
`
