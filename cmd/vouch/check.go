package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"vouch/internal/daemon"
	"vouch/internal/domaincheck"
)

func checkCommand(args []string) int { return runCheck(args, os.Stdout, os.Stderr) }

// runCheck is `vouch check` (the checks are internal/domaincheck's): is
// DOMAIN set up to send mail that passes SPF, DKIM and DMARC, and does the
// sending IP have forward-confirmed reverse DNS? Exit status 0 all good, 1
// warnings, 2 failures (an unreachable DNS server is one), 3 usage or
// configuration error; -h prints the help and exits 0.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", help{
		usage: "vouch check [-config FILE] [-ip ADDR] [-helo NAME] [-selector SEL] [-json] DOMAIN",
		about: `Checks the DNS of a sending domain as receivers will see it: its SPF record
(syntax, the 10-lookup limit, the all it ends in, and with -ip whether that
address may send), the DKIM records of the configured keys (published, and
the public half of the local key), the DMARC policy, reports and alignment,
the MX, and with -ip the PTR (forward-confirmed) and HELO name of the
sending server. Each finding is printed with the record to publish to fix it.`,
		exits:     "0 all good\n1 warnings\n2 failures (also when no DNS server answers)\n3 the configuration is invalid",
		example:   "vouch check -ip 192.0.2.1 example.com",
		maxArgs:   1,
		usageCode: 3,
	}, stdout, stderr)
	configPath := fs.String("config", "", "config file: DNS servers and signing keys (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	ipFlag := fs.String("ip", "", "the address the domain's mail is sent from: SPF is evaluated for it and its PTR checked")
	helo := fs.String("helo", "", "the HELO name the server sends (default: the PTR name of -ip)")
	selector := fs.String("selector", "", "check this DKIM selector (default: the configured keys of DOMAIN)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	rest, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(rest) == 0 {
		return fs.usageError("DOMAIN is required")
	}
	var ip netip.Addr
	if *ipFlag != "" {
		var err error
		if ip, err = netip.ParseAddr(*ipFlag); err != nil {
			return fs.usageError("-ip %q is not an IP address", *ipFlag)
		}
	}
	cfg, err := daemon.Load(*configPath)
	if err != nil {
		return fail("check", err, 3)
	}
	res, err := configResolver(cfg)
	if err != nil {
		return fail("check", err, 3)
	}
	keys, notes, err := configKeys(cfg)
	if err != nil {
		return fail("check", err, 3)
	}
	for _, n := range notes {
		fmt.Fprintf(stderr, "vouch check: %s\n", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep := domaincheck.Run(ctx, res, domaincheck.Options{Domain: rest[0], IP: ip, HELO: *helo, Selector: *selector, Keys: keys})
	if *asJSON {
		writeJSON(stdout, rep)
	} else {
		printCheckReport(stdout, rep)
	}
	return rep.Exit
}

// printCheckReport prints the report for a person: one line per item
// (✓ ok, ! warning, ✗ failure), the record found and the one to publish
// under it, and a count at the end.
func printCheckReport(w io.Writer, rep domaincheck.Report) {
	head := "vouch check " + rep.Domain
	var ctx []string
	if rep.IP != "" {
		ctx = append(ctx, "client "+rep.IP)
	}
	if rep.HELO != "" {
		ctx = append(ctx, "HELO "+rep.HELO)
	}
	if len(ctx) > 0 {
		head += " (" + strings.Join(ctx, ", ") + ")"
	}
	fmt.Fprintln(w, head)
	if rep.IP == "" {
		fmt.Fprintln(w, "  no -ip: the SPF evaluation, PTR and HELO are not checked")
	}
	fmt.Fprintln(w)
	warns, fails := 0, 0
	for _, it := range rep.Items {
		sym := "✓"
		switch it.Status {
		case domaincheck.Warn:
			sym = "!"
			warns++
		case domaincheck.Fail:
			sym = "✗"
			fails++
		}
		fmt.Fprintf(w, "%s %s: %s\n", sym, it.Title, it.Message)
		if it.Found != "" {
			fmt.Fprintf(w, "    found:   %s\n", it.Found)
		}
		if it.Publish != "" {
			fmt.Fprintf(w, "    publish: %s\n", it.Publish)
		}
	}
	fmt.Fprintln(w)
	plural := func(n int, what string) string {
		if n == 1 {
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", n, what)
	}
	switch {
	case fails > 0:
		fmt.Fprintf(w, "result: %s, %s\n", plural(fails, "failure"), plural(warns, "warning"))
	case warns > 0:
		fmt.Fprintf(w, "result: %s\n", plural(warns, "warning"))
	default:
		fmt.Fprintln(w, "result: all good")
	}
}
