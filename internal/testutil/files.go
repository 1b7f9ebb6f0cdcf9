package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteTemp writes content to a file called name in a new temporary
// directory of t and returns its path.
func WriteTemp(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
