package main

import (
	"os"
	"path/filepath"
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
