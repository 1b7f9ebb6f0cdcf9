// Command vouch is a DKIM-signing and inbound-screening milter for Postfix,
// Sendmail and Zimbra, a drop-in replacement for OpenDKIM.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"

	"vouch/internal/config"
	"vouch/internal/opensslrsa"
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

	"reports":  {runReports, "DMARC aggregate reports: list and chart the ones you receive, send yours"},
	"accounts": {runAccounts, "list sending counters and frozen accounts, release an account (hijack detection)"},

	"import-opendkim": {runImportOpenDKIM, "print the vouch configuration equivalent to an opendkim.conf"},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: vouch COMMAND [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun vouch COMMAND -h (or vouch help COMMAND) for what it does, its flags and exit codes.\n")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run runs "vouch ARGS..." and returns the exit status.
func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "vouch: a command is required\n\n")
		usage(os.Stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-version", "--version":
		name = "version"
	case "-h", "-help", "--help", "help":
		if len(rest) == 0 {
			usage(os.Stdout)
			return 0
		}
		// vouch help COMMAND is vouch COMMAND -h.
		name, rest = rest[0], []string{"-h"}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "vouch: unknown command %q%s\n\n", name, didYouMean(name))
		usage(os.Stderr)
		return 2
	}
	return cmd.run(rest)
}

// didYouMean suggests the command closest to name (by edit distance, or
// the one it is a prefix of), or says nothing when none is close.
func didYouMean(name string) string {
	best, bestDist := "", 3
	for c := range commands {
		d := config.EditDistance(name, c)
		if strings.HasPrefix(c, name) && len(name) >= 2 {
			d = 1
		}
		if d < bestDist || d == bestDist && c < best {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(": did you mean %q?", best)
}

// commit is set at build time with -ldflags "-X main.commit=..." where the
// toolchain cannot stamp it (packaging/build-deb.sh, builds with
// -buildvcs=false).
var commit = ""

func runVersion(args []string) int {
	fs := stdFlags("version", help{
		usage:   "vouch version",
		about:   "Prints vouch's version, the commit it was built from (+changes for a modified tree), the Go version and the crypto backend.",
		exits:   "0 printed",
		example: "vouch version",
	})
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
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
	crypto := cryptoBackend()
	if opensslrsa.Available {
		crypto += ", RSA signing: " + opensslrsa.Version()
	}
	fmt.Printf("vouch %s (commit %s%s, %s, crypto: %s)\n", version, rev, modified, goVersion, crypto)
	return 0
}

// fail prints an error for a command and returns its exit status.
func fail(cmd string, err error, status int) int {
	msg := strings.TrimSpace(err.Error())
	fmt.Fprintf(os.Stderr, "vouch %s: %s\n", cmd, strings.ReplaceAll(msg, "\n", "\n  "))
	return status
}
