package main

import (
	"context"
	"fmt"
	"os"

	"vouch/internal/daemon"
	"vouch/whitelist"
)

// runSync downloads the whitelist files once, as the nightly sync does.
// A running daemon picks the new files up within whitelist.check_interval.
func runSync(args []string) int {
	fs := stdFlags("sync", help{
		usage:   "vouch sync [-config FILE]",
		about:   "Downloads the whitelist files from [whitelist.sync] once, as the nightly sync does.\nA running daemon picks the new files up within whitelist.check_interval.",
		exits:   "0 every file downloaded or unchanged\n1 the configuration is invalid, no URL is configured, or a download failed or was rejected",
		example: "vouch sync -config /etc/vouch/vouch.toml",
	})
	configPath := fs.String("config", "", "config file (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	cfg, err := daemon.Load(*configPath)
	if err != nil {
		return fail("sync", err, 1)
	}
	sc, ok := daemon.SyncConfig(cfg)
	if !ok {
		return fail("sync", fmt.Errorf("no [whitelist.sync] URLs configured"), 1)
	}
	log := daemon.NewLogger(cfg, os.Stderr)
	set, err := whitelist.NewSet(map[whitelist.Kind]string{
		whitelist.Reverse: cfg.Whitelist.Reverse, whitelist.HELO: cfg.Whitelist.HELO, whitelist.Mail: cfg.Whitelist.Mail,
	}, log)
	if err != nil {
		return fail("sync", err, 1)
	}
	status := 0
	for _, r := range whitelist.SyncOnce(context.Background(), daemon.HTTPClient(), sc, set, log) {
		fmt.Printf("%-8s %-9s %s -> %s (%d entries)", r.Kind, r.Status, r.URL, r.Path, r.Entries)
		if r.Reason != "" {
			fmt.Printf(": %s", r.Reason)
		}
		fmt.Println()
		if r.Status == whitelist.SyncFailed || r.Status == whitelist.SyncRejected {
			status = 1
		}
	}
	return status
}
