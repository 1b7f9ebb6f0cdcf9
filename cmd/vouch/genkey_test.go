package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFileNeverFollowsSymlinks: a symlink planted where genkey writes
// (the old fixed "<path>.tmp", or the key path itself) is replaced or
// ignored, never written through, and the key ends up 0600.
func TestWriteFileNeverFollowsSymlinks(t *testing.T) {
	for _, planted := range []string{"sel.private.tmp", "sel.private"} {
		t.Run(planted, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, filepath.Join(dir, planted)); err != nil {
				t.Fatal(err)
			}
			key := filepath.Join(dir, "sel.private")
			if err := writeFile(key, []byte("KEY")); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Fatalf("the symlink's target was written: %q", b)
			}
			fi, err := os.Lstat(key)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file %v %v, want a regular 0600 file", fi.Mode(), err)
			}
			if b, _ := os.ReadFile(key); string(b) != "KEY" {
				t.Fatalf("key %q", b)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".sel.private.*")); len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}

// TestGenkeyChecksArguments: genkey refuses a domain or selector that is
// not a DNS name and an RSA key under 1024 bits before writing anything,
// warns under 2048 bits, and writes the domain in its DNS form.
func TestGenkeyChecksArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string // in stderr
	}{
		{"no domain", nil, 2, "vouch genkey: -d DOMAIN is required\n"},
		{"space in domain", []string{"-d", "exa mple.com"}, 2, `vouch genkey: -d: domain "exa mple.com" is not a valid domain name`},
		{"one label", []string{"-d", "localhost"}, 2, `-d: domain "localhost" is not a valid domain name`},
		{"IP address", []string{"-d", "192.0.2.1"}, 2, `-d: domain "192.0.2.1" is not a valid domain name`},
		{"slash in domain", []string{"-d", "../etc"}, 2, "is not a valid domain name"},
		{"slash in selector", []string{"-d", "example.com", "-s", "../x"}, 2, `vouch genkey: -s "../x" is not a valid selector`},
		{"underscore in selector", []string{"-d", "example.com", "-s", "a_b"}, 2, `-s "a_b" is not a valid selector`},
		{"hyphen first", []string{"-d", "example.com", "-s", "-x"}, 2, `-s "-x" is not a valid selector`},
		{"empty label", []string{"-d", "example.com", "-s", "a..b"}, 2, `-s "a..b" is not a valid selector`},
		{"512 bits", []string{"-d", "example.com", "-b", "512"}, 2, "vouch genkey: -b 512: RSA keys need at least 1024 bits"},
		{"1024 bits", []string{"-d", "example.com", "-b", "1024", "-s", "old"}, 0, "warning: a 1024-bit RSA key is weak"},
		{"2048 bits", []string{"-d", "Example.COM.", "-s", "2026.mail-1"}, 0, ""},
		{"ed25519 ignores -b", []string{"-d", "example.com", "-t", "ed25519", "-b", "512", "-s", "ed"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			code, stdout, stderr := vouch(t, dir, append([]string{"genkey", "-D", dir}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.says) || tc.says == "" && stderr != "" {
				t.Fatalf("exit %d (want %d), stderr:\n%s", code, tc.code, stderr)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			if tc.code != 0 {
				if len(files) != 0 || stdout != "" {
					t.Errorf("refused, yet wrote %v, stdout %q", files, stdout)
				}
				return
			}
			if len(files) != 2 {
				t.Errorf("files %v, want SELECTOR.private and SELECTOR.txt", files)
			}
			if strings.Contains(stderr, "1024") != strings.Contains(tc.name, "1024") {
				t.Errorf("warning %q for %s", stderr, tc.name)
			}
			if !strings.Contains(stdout, "publish this record in the example.com zone") {
				t.Errorf("stdout:\n%s", stdout)
			}
		})
	}
}
