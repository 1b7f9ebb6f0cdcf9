package main

import (
	"context"
	"encoding/json"
	"flag"
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
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file: DNS servers and signing keys (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	ipFlag := fs.String("ip", "", "the address the domain's mail is sent from: SPF is evaluated for it and its PTR checked")
	helo := fs.String("helo", "", "the HELO name the server sends (default: the PTR name of -ip)")
	selector := fs.String("selector", "", "check this DKIM selector (default: the configured keys of DOMAIN)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: vouch check [-config FILE] [-ip ADDR] [-helo NAME] [-selector SEL] [-json] DOMAIN

Checks the DNS of a sending domain as receivers will see it: its SPF record
(syntax, the 10-lookup limit, the all it ends in, and with -ip whether that
address may send), the DKIM records of the configured keys (published, and
the public half of the local key), the DMARC policy, reports and alignment,
the MX, and with -ip the PTR (forward-confirmed) and HELO name of the
sending server. Each finding is printed with the record to publish to fix it.

Exit status: 0 all good, 1 warnings, 2 failures (also when no DNS server
answers), 3 usage or configuration error.

Example:
  vouch check -ip 192.0.2.1 example.com

Flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	// The domain may come before the flags, too.
	rest := fs.Args()
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		if code, done := parseFlags(fs, rest[1:]); done {
			return code
		}
		rest = append([]string{rest[0]}, fs.Args()...)
	}
	if len(rest) != 1 {
		fmt.Fprintf(stderr, "vouch check: want exactly one DOMAIN, got %d arguments\n\n", len(rest))
		fs.Usage()
		return 3
	}
	var ip netip.Addr
	if *ipFlag != "" {
		var err error
		if ip, err = netip.ParseAddr(*ipFlag); err != nil {
			fmt.Fprintf(stderr, "vouch check: -ip %q is not an IP address\n", *ipFlag)
			return 3
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
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printCheckReport(stdout, rep)
	}
	return rep.Exit
}

// parseFlags parses args; done says the command ends with code: 0 for
// -h, 3 for a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	switch err := fs.Parse(args); {
	case err == flag.ErrHelp:
		return 0, true
	case err != nil:
		return 3, true
	}
	return 0, false
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
