package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the tests run this test binary as the vouch command: with
// VOUCH_TEST_MAIN=1 it is main(), so exit codes and output are the real
// ones.
func TestMain(m *testing.M) {
	if os.Getenv("VOUCH_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// vouch runs "vouch args..." in dir and returns its exit code, stdout and
// stderr.
func vouch(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VOUCH_TEST_MAIN=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("vouch %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestSubcommandUsage: every subcommand answers -h (and -help, --help) with
// its help on stdout and exit 0; a stray argument and an unknown flag are
// usage errors that say what is wrong first, then the help.
func TestSubcommandUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		cmd       []string // the command and the arguments it needs
		usageCode int
	}{
		{[]string{"serve"}, 2},
		{[]string{"genkey", "-d", "example.com", "-D", dir}, 2},
		{[]string{"explain", "-ip", "192.0.2.1"}, 3},
		{[]string{"sync"}, 2},
		{[]string{"check", "example.com"}, 3},
		{[]string{"doctor"}, 3},
		{[]string{"testkey"}, 64},
		{[]string{"keys"}, 2},
		{[]string{"accounts", "list"}, 2},
		{[]string{"accounts", "release", "alice"}, 2},
		{[]string{"import-opendkim", "/nonexistent/opendkim.conf"}, 2},
		{[]string{"version"}, 2},
	} {
		name := strings.Join(tc.cmd[:1], " ")
		if tc.cmd[0] == "accounts" {
			name += " " + tc.cmd[1]
		}
		t.Run(name, func(t *testing.T) {
			if !strings.HasPrefix(name, "accounts") {
				if _, ok := commands[name]; !ok {
					t.Fatalf("%q is not a command", name)
				}
			}
			for _, h := range []string{"-h", "-help", "--help"} {
				code, stdout, stderr := vouch(t, dir, append(tc.cmd, h)...)
				if code != 0 || !strings.HasPrefix(stdout, "usage: vouch "+tc.cmd[0]) || !strings.Contains(stdout, "vouch "+name) || stderr != "" {
					t.Fatalf("%s %s: exit %d, stdout:\n%s\nstderr:\n%s", name, h, code, stdout, stderr)
				}
				for _, want := range []string{"\nExit codes:\n  0 ", "\nExample:\n  vouch " + tc.cmd[0]} {
					if !strings.Contains(stdout, want) {
						t.Errorf("%s %s lacks %q:\n%s", name, h, want, stdout)
					}
				}
			}
			for _, bad := range []struct {
				args []string
				says string
			}{
				{append(tc.cmd, "stray-arg"), `vouch ` + name + `: unexpected argument "stray-arg"`},
				{append(tc.cmd[:1:1], append([]string{"-no-such-flag"}, tc.cmd[1:]...)...), "vouch " + tc.cmd[0]},
			} {
				code, stdout, stderr := vouch(t, dir, bad.args...)
				if code != tc.usageCode || stdout != "" || !strings.HasPrefix(stderr, bad.says) || !strings.Contains(stderr, "\n\nusage: vouch ") {
					t.Errorf("%q: exit %d (want %d), stdout %q, stderr:\n%s", bad.args, code, tc.usageCode, stdout, stderr)
				}
			}
		})
	}
	// The unknown flag is named.
	if _, _, stderr := vouch(t, dir, "serve", "-no-such-flag"); !strings.Contains(stderr, "-no-such-flag") {
		t.Errorf("unknown flag not named:\n%s", stderr)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Errorf("a usage error wrote files: %v", files)
	}
}

// TestTopLevelUsage: vouch alone, help, -h and unknown commands.
func TestTopLevelUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{nil, 2, "", "vouch: a command is required"},
		{[]string{"help"}, 0, "usage: vouch COMMAND", ""},
		{[]string{"-h"}, 0, "usage: vouch COMMAND", ""},
		{[]string{"--help"}, 0, "usage: vouch COMMAND", ""},
		{[]string{"help", "genkey"}, 0, "usage: vouch genkey", ""},
		{[]string{"gnekey"}, 2, "", `vouch: unknown command "gnekey": did you mean "genkey"?`},
		{[]string{"acounts"}, 2, "", `did you mean "accounts"?`},
		{[]string{"import"}, 2, "", `did you mean "import-opendkim"?`},
		{[]string{"frobnicate"}, 2, "", `vouch: unknown command "frobnicate"` + "\n"},
	} {
		code, stdout, stderr := vouch(t, t.TempDir(), tc.args...)
		if code != tc.code || !strings.Contains(stdout, tc.inStdout) || !strings.Contains(stderr, tc.inStderr) {
			t.Errorf("vouch %q: exit %d (want %d), stdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, stdout, stderr)
		}
	}
}
