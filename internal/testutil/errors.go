package testutil

import (
	"strings"
	"testing"
)

// ErrorMentions fails t unless err is an error whose text contains every
// one of wants.
func ErrorMentions(t testing.TB, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one mentioning %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}
