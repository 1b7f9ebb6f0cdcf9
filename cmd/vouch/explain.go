package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"

	"vouch/internal/daemon"
	"vouch/policy"
)

// runExplain runs the screen's decision once for a made-up client and
// prints how it came about. Exit status: 0 accept, 1 tempfail, 2 reject,
// 3 usage or configuration error.
func runExplain(args []string) int {
	fs := stdFlags("explain", help{
		usage:     "vouch explain -ip ADDR [-helo NAME] [-from ADDR] [-auth] [-config FILE]",
		about:     "Runs the inbound screen's decision once for a made-up client and prints how it came about, step by step.",
		exits:     "0 accept\n1 tempfail\n2 reject\n3 the configuration is invalid",
		example:   "vouch explain -ip 192.0.2.1 -helo mail.example.com -from alice@example.com",
		usageCode: 3,
	})
	ipFlag := fs.String("ip", "", "client IP address (required)")
	helo := fs.String("helo", "", "HELO/EHLO name the client sends")
	from := fs.String("from", "", "MAIL FROM address (empty: the null sender <>)")
	auth := fs.Bool("auth", false, "the client authenticated with SMTP AUTH")
	configPath := fs.String("config", "", "config file (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	if *ipFlag == "" {
		return fs.usageError("-ip ADDR is required")
	}
	ip, err := netip.ParseAddr(*ipFlag)
	if err != nil {
		return fs.usageError("-ip %q is not an IP address", *ipFlag)
	}
	cfg, err := daemon.Load(*configPath)
	if err != nil {
		return fail("explain", err, 3)
	}
	// explain signs nothing: it needs the internal hosts, not the keys,
	// so a missing or unsafe key (or an LDAP server down) changes nothing.
	cfg.Signing.KeyTable, cfg.Signing.SigningTable, cfg.Signing.Keys = "", "", nil
	rt, err := daemon.Build(cfg, daemon.NewLogger(cfg, io.Discard), nil)
	if err != nil {
		return fail("explain", err, 3)
	}
	w := os.Stdout
	fmt.Fprintf(w, "client %s, HELO %q, MAIL FROM <%s>%s\n", ip, *helo, *from, map[bool]string{true: ", authenticated"}[*auth])
	if ok, entry := rt.Signer.Internal("", ip); ok {
		fmt.Fprintf(w, "internal host (signing.internal_hosts entry %s): not screened, outbound mail is signed\nresult: accept\n", entry)
		return 0
	}
	if rt.Screener == nil {
		fmt.Fprintf(w, "screen: disabled (screen.enabled = false)\nresult: accept\n")
		return 0
	}
	conn := rt.Screener.Connect(ip)
	defer conn.Close()
	if *helo != "" {
		conn.Helo(*helo)
	}
	d := conn.Mail(context.Background(), *from, *auth)
	return printDecision(w, rt.Screener.Config(), d)
}

func printDecision(w io.Writer, cfg *policy.Config, d policy.Decision) int {
	fmt.Fprintf(w, "mode: %s\n", cfg.Mode)
	if d.Exemption != "" {
		fmt.Fprintf(w, "%s: not screened\n", d.Exemption)
	}
	for _, v := range d.Verdicts {
		fmt.Fprintf(w, "\n%s check\n", v.Check)
		for _, e := range v.Evidence {
			fmt.Fprintf(w, "  dns: %s\n", e)
		}
		switch {
		case v.Skipped:
			fmt.Fprintf(w, "  skipped (disabled, or nothing to check)\n")
		case v.Exempt != nil:
			fmt.Fprintf(w, "  whitelisted by %s\n", v.Exempt)
		default:
			fmt.Fprintf(w, "  outcome: %s\n  action: %s\n", v.Outcome, v.Action)
			if len(v.Undetermined) > 0 {
				fmt.Fprintf(w, "  undetermined after a DNS failure: %v (%v)\n", v.Undetermined, v.TempErr)
			}
		}
	}
	if d.IPRev != "" {
		fmt.Fprintf(w, "\nAuthentication-Results: iprev=%s\n", d.IPRev)
	}
	fmt.Fprintln(w)
	if d.Reply == nil {
		fmt.Fprintf(w, "result: %s\n", d.Action)
		return 0
	}
	if d.Trial {
		fmt.Fprintf(w, "trial mode: would %s, sends a tempfail instead\n", d.Configured)
	}
	fmt.Fprintf(w, "result: %s (decided by the %s check)\nSMTP reply to MAIL FROM: %s\n", d.Action, d.Cause, d.Reply)
	if d.Reply.Temporary() {
		return 1
	}
	return 2
}
