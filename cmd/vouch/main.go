// Command vouch is a DKIM-signing and inbound-screening milter for Postfix,
// Sendmail and Zimbra, a drop-in replacement for OpenDKIM.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	run     func(args []string) int
	summary string
}

var commands = map[string]command{
	"serve":   {runServe, "run the milter daemon"},
	"genkey":  {runGenkey, "generate a DKIM key pair and its DNS record (like opendkim-genkey)"},
	"explain": {runExplain, "show how the inbound screen decides for a client, step by step"},
	"sync":    {runSync, "download the whitelist files from [whitelist.sync] once"},
	"version": {runVersion, "print version information"},
	"check":   {checkCommand, "check a sending domain's SPF, DKIM, DMARC, MX and PTR records"},
	"doctor":  {doctorCommand, "check how Postfix or Sendmail is wired to vouch, then sign a test message through it"},
	"testkey": {testkeyCommand, "check that published DKIM keys match the private keys (like opendkim-testkey)"},
	"keys":    {keysCommand, "list signing keys: age, size, DNS record, rotation to the next key, what to publish now"},

	"accounts": {runAccounts, "list sending counters and frozen accounts, release an account (hijack detection)"},

	"import-opendkim": {runImportOpenDKIM, "print the vouch configuration equivalent to an opendkim.conf"},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: vouch COMMAND [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-16s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun vouch COMMAND -h for its flags.\n")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	switch name {
	case "-version", "--version":
		name = "version"
	case "-h", "-help", "--help", "help":
		usage()
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "vouch: unknown command %q\n\n", name)
		usage()
		os.Exit(2)
	}
	os.Exit(cmd.run(os.Args[2:]))
}

// commit is set at build time with -ldflags "-X main.commit=..." where the
// toolchain cannot stamp it (packaging/build-deb.sh, builds with
// -buildvcs=false).
var commit = ""

func runVersion(args []string) int {
	rev, modified, goVersion := commit, "", "unknown Go"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && rev == "":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				modified = "+changes"
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	fmt.Printf("vouch %s (commit %s%s, %s, crypto: %s)\n", version, rev, modified, goVersion, cryptoBackend())
	return 0
}

// fail prints an error for a command and returns its exit status.
func fail(cmd string, err error, status int) int {
	msg := strings.TrimSpace(err.Error())
	fmt.Fprintf(os.Stderr, "vouch %s: %s\n", cmd, strings.ReplaceAll(msg, "\n", "\n  "))
	return status
}
