package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"

	"vouch/internal/daemon"
)

func runServe(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	configPath := fs.String("config", "", "config file (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	check := fs.Bool("check", false, "validate the configuration, keys, tables and lists, then exit 0 (ok) or 1")
	shutdown := fs.Duration("shutdown-timeout", 0, "on SIGTERM, how long open sessions may take to finish (default: limits.shutdown_timeout)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until vouch stops (for performance work)")
	fs.Parse(args)
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
