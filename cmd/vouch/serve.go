package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"vouch/internal/daemon"
)

func runServe(args []string) int {
	fs := stdFlags("serve", help{
		usage: "vouch serve [-config FILE] [-check] [-shutdown-timeout DURATION]",
		about: "Runs the milter daemon: signs outbound mail, screens and verifies inbound mail.\n" +
			"With -check, validates the configuration, keys, tables and lists and exits.",
		exits:   "0 stopped cleanly, or -check found the configuration valid\n1 the configuration is invalid, or the daemon failed",
		example: "vouch serve -config /etc/vouch/vouch.toml -check",
	})
	configPath := fs.String("config", "", "config file (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	check := fs.Bool("check", false, "validate the configuration, keys, tables and lists, then exit 0 (ok) or 1")
	shutdown := fs.Duration("shutdown-timeout", 0, "on SIGTERM, how long open sessions may take to finish (default: limits.shutdown_timeout)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until vouch stops (for performance work)")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fail("serve", err, 1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail("serve", err, 1)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	if *check {
		rt, err := daemon.Check(*configPath, os.Stderr)
		if err != nil {
			return fail("serve -check", err, 1)
		}
		for _, w := range rt.Warnings {
			fmt.Fprintf(os.Stderr, "warning: %s\n", w)
		}
		fmt.Printf("vouch: configuration %s is valid\n", rt.Config.Name())
		return 0
	}
	if err := daemon.Serve(daemon.Options{ConfigPath: *configPath, ShutdownTimeout: *shutdown, Version: version}); err != nil {
		return fail("serve", err, 1)
	}
	return 0
}
