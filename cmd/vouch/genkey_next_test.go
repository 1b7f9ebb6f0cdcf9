package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGenkeyNextFlags: the selector and directory genkey -next picks, and
// the domains it refuses.
func TestGenkeyNextFlags(t *testing.T) {
	dir := t.TempDir()
	mail, _ := checkKeyFile(t, dir, "mail")
	ed, _ := checkKeyFile(t, dir, "ed")
	cfg := filepath.Join(dir, "vouch.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[rotation]
selector_pattern = "2006m01"
[[signing.key]]
domain = "example.test"
selector = "mail"
private_key = %q
[[signing.key]]
domain = "example.test"
selector = "ed"
private_key = %q
[[signing.key]]
domain = "busy.test"
selector = "mail"
private_key = %q
next_selector = "2026m07"
next_private_key = "/nowhere"
`, mail, ed, mail)), 0o644)
	now := time.Date(2026, 7, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		domain, alg string
		args        []string
		selector    string
		dir         string
		err         string
	}{
		{domain: "example.test", alg: "rsa", selector: "2026m07", dir: dir},
		{domain: "Example.Test.", alg: "ed25519", selector: "2026m07-ed", dir: dir},
		{domain: "example.test", alg: "rsa", args: []string{"-s", "july", "-D", "/elsewhere"}, selector: "july", dir: "/elsewhere"},
		{domain: "example.test", alg: "rsa", args: []string{"-s", "mail"}, err: `selector "mail" is the current one`},
		{domain: "other.test", alg: "rsa", err: "no rsa [[signing.key]] for other.test"},
		{domain: "busy.test", alg: "rsa", err: `already has next_selector = "2026m07"`},
		{domain: "busy.test", alg: "ed25519", err: "no ed25519 [[signing.key]] for busy.test"},
	}
	for _, tc := range cases {
		t.Run(tc.domain+"/"+tc.alg+"/"+strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("genkey", flag.ContinueOnError)
			selector := fs.String("s", "default", "")
			d := fs.String("D", ".", "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			_, err := nextKeyFlags(fs, cfg, tc.domain, tc.alg, selector, d, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *selector != tc.selector || *d != tc.dir {
				t.Fatalf("selector %q dir %q, want %q %q", *selector, *d, tc.selector, tc.dir)
			}
		})
	}
}
