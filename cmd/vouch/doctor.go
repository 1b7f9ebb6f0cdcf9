package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"vouch/internal/daemon"
	"vouch/internal/doctor"
)

func doctorCommand(args []string) int { return runDoctor(args, os.Stdout) }

// runDoctor is `vouch doctor`: is the MTA wired to vouch so that every
// message is signed and screened? Exit 0 all good, 1 warnings, 2
// failures, 3 usage or configuration error.
func runDoctor(args []string, stdout io.Writer) int {
	fs := newFlags("doctor", help{
		usage: "vouch doctor [-config FILE] [-postfix-config DIR] [-postconf PATH] [-sendmail-cf FILE] [-no-selftest] [-json]",
		about: `Checks how the MTA is wired to vouch: Postfix's smtpd_milters and
non_smtpd_milters reach vouch's socket as each (chrooted) service sees the
path, master.cf -o overrides that bypass it, milter_default_action,
milter_protocol and timeouts against vouch's budgets, internal hosts
against mynetworks, open relay, SMTP AUTH on submission, TLS; then sends
one message per signing domain through vouch's socket as Postfix does and
verifies its signature (against DNS, or the local key if DNS is down).
With -sendmail-cf it checks Sendmail's INPUT_MAIL_FILTER instead.
Zimbra: -postconf /opt/zimbra/common/sbin/postconf -postfix-config /opt/zimbra/common/conf`,
		exits:     "0 all good\n1 warnings\n2 failures\n3 the configuration is invalid",
		example:   "vouch doctor -config /etc/vouch/vouch.toml -postfix-config /etc/postfix",
		usageCode: 3,
	}, stdout, os.Stderr)
	configPath := fs.String("config", "", "vouch's config file (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	pfDir := fs.String("postfix-config", "", "Postfix's config directory, as postconf -c DIR (default: postconf's own, /etc/postfix)")
	postconf := fs.String("postconf", "postconf", "the postconf binary (Zimbra: /opt/zimbra/common/sbin/postconf)")
	sendmailCF := fs.String("sendmail-cf", "", "check Sendmail instead: its sendmail.mc or sendmail.cf with the INPUT_MAIL_FILTER line")
	noSelfTest := fs.Bool("no-selftest", false, "skip the live self-test (a signed message per domain through vouch's socket)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	cfg, err := daemon.Load(*configPath)
	if err != nil {
		return fail("doctor", err, 3)
	}
	res, err := configResolver(cfg)
	if err != nil {
		return fail("doctor", err, 3)
	}
	opts := doctor.Options{Config: cfg, Signer: daemon.SignerConfig(cfg), Postconf: *postconf, PostfixDir: *pfDir, SendmailCF: *sendmailCF, SelfTest: !*noSelfTest, Resolver: res}
	if *sendmailCF != "" && *pfDir == "" {
		opts.Postconf = "" // Sendmail only
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep := doctor.Run(ctx, opts)
	if *asJSON {
		writeJSON(stdout, rep)
	} else {
		printDoctorReport(stdout, rep)
	}
	return rep.Exit
}

func printDoctorReport(w io.Writer, rep doctor.Report) {
	fmt.Fprintf(w, "vouch doctor: vouch config %s", rep.Config)
	if rep.Postfix != "" {
		fmt.Fprintf(w, ", Postfix config %s", rep.Postfix)
	}
	if rep.SendmailCF != "" {
		fmt.Fprintf(w, ", Sendmail %s", rep.SendmailCF)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	symbol := map[string]string{doctor.OK: "✓", doctor.Warn: "!", doctor.Fail: "✗"}
	count := map[string]int{}
	for _, it := range rep.Items {
		count[it.Status]++
		fmt.Fprintf(w, "%s %s: %s\n", symbol[it.Status], it.Title, it.Message)
		if it.Fix != "" {
			fmt.Fprintf(w, "    fix: %s\n", it.Fix)
		}
	}
	fmt.Fprintf(w, "\nresult: %s (%d ok, %d warnings, %d failures)\n", rep.Result, count[doctor.OK], count[doctor.Warn], count[doctor.Fail])
}
