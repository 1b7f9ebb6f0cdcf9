package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"vouch/internal/config"
	"vouch/internal/daemon"
	"vouch/internal/hijack"
)

// runAccounts is `vouch accounts list|release`: it talks to the running
// daemon over [hijack] admin_socket, because the daemon holds the counters
// in memory and must drop a freeze there at once (see internal/hijack's
// admin.go).
func runAccounts(args []string) int {
	sub, maxArgs := "", 0
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if sub == "release" {
		maxArgs = 1
	}
	fs := stdFlags(strings.TrimSpace("accounts "+sub), help{
		usage: "vouch accounts list [-config FILE] [-socket PATH] [-json]\n" +
			"vouch accounts release [-config FILE] [-socket PATH] LOGIN",
		about: "Talks to the running daemon over [hijack] admin_socket (hijack detection):\n" +
			"list     the messages and recipients each SMTP-authenticated login sent in the\n" +
			"         sliding window, the frozen accounts, and the backend (with Redis:\n" +
			"         the node that answered)\n" +
			"release  unfreeze LOGIN and clear its counters (the postmaster can also\n" +
			"         reply to the freeze notification: [hijack] release_address)",
		exits:   "0 done\n1 the daemon could not be reached or refused",
		example: "vouch accounts release alice@example.com",
		maxArgs: maxArgs,
	})
	configPath := fs.String("config", "", "config file whose [hijack] admin_socket is used (default: /etc/vouch/vouch.toml)")
	socket := fs.String("socket", "", "admin socket of the daemon (default: from the config, else "+config.Default().Hijack.AdminSocket+")")
	asJSON := fs.Bool("json", false, "list: print the daemon's JSON reply")
	rest, code, ok := fs.parse(args)
	switch {
	case !ok:
		return code
	case sub == "":
		return fs.usageError("a subcommand is required: list or release")
	case sub != "list" && sub != "release":
		return fs.usageError("unknown subcommand %q: list or release", sub)
	case sub == "release" && len(rest) == 0:
		return fs.usageError("LOGIN is required")
	}
	path := *socket
	if path == "" {
		path = adminSocketFromConfig(*configPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	switch {
	case sub == "list" && len(rest) == 0:
		if err := accountsList(ctx, os.Stdout, path, *asJSON); err != nil {
			return fail("accounts list", err, 1)
		}
	case sub == "release" && len(rest) == 1:
		if err := accountsRelease(ctx, os.Stdout, path, rest[0]); err != nil {
			return fail("accounts release", err, 1)
		}
	}
	return 0
}

// adminSocketFromConfig is the admin socket named by the [hijack] section
// of the config at path ("" means the config serve would use).
func adminSocketFromConfig(path string) string {
	cfg, err := daemon.Load(path)
	if err != nil {
		return config.Default().Hijack.AdminSocket
	}
	return cfg.Hijack.AdminSocket
}

// accountsList prints the daemon's counters and freeze list.
func accountsList(ctx context.Context, w io.Writer, socket string, asJSON bool) error {
	l, err := hijack.AdminList(ctx, socket)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, l)
	}
	trial := ""
	if l.Trial {
		trial = " (trial)"
	}
	node := ""
	if l.Node != "" {
		node = " (" + l.Node + ")"
	}
	fmt.Fprintf(w, "backend %s%s, action %s%s, limits %d messages and %d recipients per %s\n",
		l.Source, node, l.Action, trial, l.Messages, l.Recipients, l.Window)
	if l.Source != l.Backend {
		fmt.Fprintf(w, "warning: numbers from %s\n", l.Source)
	}
	fmt.Fprintln(w)
	if len(l.Accounts) == 0 {
		fmt.Fprintf(w, "no login sent mail in the last %s\n", l.Window)
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LOGIN\tMESSAGES\tRECIPIENTS\tOLDEST\tCLIENT IPS")
		for _, a := range l.Accounts {
			oldest := "-"
			if !a.Oldest.IsZero() {
				oldest = a.Oldest.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%d/%d\t%d/%d\t%s\t%s\n", a.Login, a.Messages, l.Messages, a.Recipients, l.Recipients,
				oldest, strings.Join(a.IPs, ","))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if len(l.Frozen) == 0 {
		fmt.Fprintln(w, "no frozen accounts")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FROZEN\tSINCE\tBY\tREASON")
	for _, f := range l.Frozen {
		host := f.Host
		if host == "" {
			host = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Login, f.Since.UTC().Format(time.RFC3339), host, f.Reason)
	}
	tw.Flush()
	return nil
}

// accountsRelease unfreezes login.
func accountsRelease(ctx context.Context, w io.Writer, socket, login string) error {
	was, err := hijack.AdminRelease(ctx, socket, login)
	if err != nil {
		return err
	}
	if was {
		fmt.Fprintf(w, "released %s; its counters start from zero\n", login)
	} else {
		fmt.Fprintf(w, "%s was not frozen; its counters start from zero\n", login)
	}
	return nil
}
