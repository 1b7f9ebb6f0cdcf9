// Package testutil holds small helpers shared by tests.
package testutil

import (
	"os"
	"testing"
)

// Require reports a missing test dependency (a tool, root, a service):
// in CI (CI=true) the test fails, since a skip there would hide that the
// test never ran; elsewhere it is skipped so that a developer without the
// tool can run the rest.
func Require(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("missing test dependency in CI: %s", what)
		return
	}
	t.Skipf("skipped: %s (a failure when CI=true)", what)
}

// InCI reports whether the tests run in CI (CI=true, as GitHub Actions,
// GitLab and most others set it).
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot calls Require unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Require(t, "root")
	}
}
