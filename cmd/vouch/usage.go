package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// help is what a subcommand's -h prints, in this order: the usage lines,
// what it does, its flags, its exit codes and one example.
type help struct {
	usage   string // "vouch genkey -d DOMAIN [-s SELECTOR]"; more lines for more forms
	about   string // what the command does, a paragraph
	exits   string // "0 written, 1 a file could not be written": the usage code is added
	example string // one command line
	maxArgs int    // positional arguments allowed after the flags
	// usageCode is the exit status of a usage error: 2 unless the
	// command's 2 already means something (check, explain) or the tool it
	// replaces used another (testkey: 64 as opendkim-testkey).
	usageCode int
}

// cmdFlags is a subcommand's flag set with its help: every command parses
// its arguments through it, so -h, a bad flag and a stray argument behave
// the same everywhere.
type cmdFlags struct {
	*flag.FlagSet
	help
	stdout, stderr io.Writer
}

// newFlags makes the flag set of "vouch NAME". Help goes to stdout (it was
// asked for), usage errors to stderr.
func newFlags(name string, h help, stdout, stderr io.Writer) *cmdFlags {
	if h.usageCode == 0 {
		h.usageCode = 2
	}
	fs := &cmdFlags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), help: h, stdout: stdout, stderr: stderr}
	// flag prints its own message and the usage on a parse error; parse
	// prints them in vouch's form instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// stdFlags is newFlags for commands that write to the process's stdout
// and stderr.
func stdFlags(name string, h help) *cmdFlags { return newFlags(name, h, os.Stdout, os.Stderr) }

// printHelp writes the whole help to w.
func (fs *cmdFlags) printHelp(w io.Writer) {
	fs.SetOutput(w)
	defer fs.SetOutput(io.Discard)
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.ReplaceAll(fs.usage, "\n", "\n       "), strings.TrimSpace(fs.about))
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintf(w, "\nFlags:\n")
		fs.PrintDefaults()
	}
	fmt.Fprintf(w, "\nExit codes:\n")
	for _, e := range strings.Split(fs.exits, "\n") {
		if e = strings.TrimSpace(e); e != "" {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintf(w, "  %d usage error (a bad flag or argument); -h prints this help and exits 0\n", fs.usageCode)
	fmt.Fprintf(w, "\nExample:\n  %s\n", fs.example)
}

// usageError says what is wrong, then how the command is used, and returns
// the command's usage exit status.
func (fs *cmdFlags) usageError(format string, a ...any) int {
	fmt.Fprintf(fs.stderr, "vouch %s: %s\n\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.printHelp(fs.stderr)
	return fs.usageCode
}

// parse parses args, flags and positional arguments in any order ("--"
// ends the flags), and returns the positional ones. ok false means the
// command ends now with code: 0 after -h, the usage code after a bad flag
// or more than maxArgs arguments.
func (fs *cmdFlags) parse(args []string) (pos []string, code int, ok bool) {
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp(fs.stdout)
			return nil, 0, false
		}
		if err != nil {
			return nil, fs.usageError("%v", err), false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) > fs.maxArgs {
		return nil, fs.usageError("unexpected argument %q", pos[fs.maxArgs]), false
	}
	return pos, 0, true
}

// writeJSON is what -json prints: v, indented, one document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
