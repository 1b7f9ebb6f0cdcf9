package testutil

import (
	"testing"
)

// fakeTB records what Require does instead of ending the test.
type fakeTB struct {
	testing.TB
	failed, skipped bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }
func (f *fakeTB) Skipf(string, ...any)  { f.skipped = true }

func TestRequire(t *testing.T) {
	for _, tc := range []struct {
		ci              string
		failed, skipped bool
	}{{"true", true, false}, {"", false, true}, {"false", false, true}} {
		t.Setenv("CI", tc.ci)
		f := &fakeTB{TB: t}
		Require(f, "something")
		if f.failed != tc.failed || f.skipped != tc.skipped {
			t.Errorf("CI=%q: failed %v skipped %v, want %v %v", tc.ci, f.failed, f.skipped, tc.failed, tc.skipped)
		}
	}
}
