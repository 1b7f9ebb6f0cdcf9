package smtpreply

import (
	"fmt"
	"strings"
	"testing"
)

func TestReply(t *testing.T) {
	tests := []struct {
		r         Reply
		str, soft string
		temporary bool
	}{
		{Reply{550, "7.25", "no PTR"}, "550 5.7.25 no PTR", "450 4.7.25 no PTR", false},
		{Reply{521, "7.1", "go away"}, "521 5.7.1 go away", "421 4.7.1 go away", false},
		{Reply{451, "4.3", "DNS"}, "451 4.4.3 DNS", "451 4.4.3 DNS", true},
		{Reply{452, "7.1", "limit"}, "452 4.7.1 limit", "452 4.7.1 limit", true},
		{Reply{421, "7.1", "bye"}, "421 4.7.1 bye", "421 4.7.1 bye", true},
	}
	for _, tc := range tests {
		if got := tc.r.String(); got != tc.str {
			t.Errorf("%+v: String %q, want %q", tc.r, got, tc.str)
		}
		if got := tc.r.Softened().String(); got != tc.soft {
			t.Errorf("%+v: Softened %q, want %q", tc.r, got, tc.soft)
		}
		if tc.r.Temporary() != tc.temporary || !tc.r.Softened().Temporary() {
			t.Errorf("%+v: Temporary %v", tc.r, tc.r.Temporary())
		}
		if got := tc.r.Reason(); got != strings.SplitN(tc.str, " ", 2)[1] {
			t.Errorf("%+v: Reason %q", tc.r, got)
		}
	}
}

// The class of the enhanced code always follows the basic code, before and
// after softening: 4xx goes with 4.x.x, 5xx with 5.x.x.
func TestClassFollowsCode(t *testing.T) {
	for code := 400; code < 600; code++ {
		r := Reply{code, "7.1", "x"}
		for _, r := range []Reply{r, r.Softened()} {
			if !strings.HasPrefix(r.EnhancedCode(), fmt.Sprint(r.Code/100)+".") {
				t.Fatalf("%d: %s", code, r)
			}
		}
	}
}
