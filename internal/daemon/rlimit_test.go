package daemon

import (
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

// TestRaiseFileLimit: the soft limit on open files ends at the hard
// limit, and a max_sessions that would not fit is warned about.
func TestRaiseFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	if orig.Max < 300 {
		t.Fatalf("hard limit %d: too low to test", orig.Max)
	}
	tests := []struct {
		name        string
		maxSessions int
		want        string
	}{
		{"fits", int(orig.Max/2) - 64, `msg="open files limit" limit=`},
		{"does not fit", int(orig.Max/2) + 1, "raise LimitNOFILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			low := syscall.Rlimit{Cur: 256, Max: orig.Max}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
				t.Fatal(err)
			}
			var logs strings.Builder
			raiseFileLimit(slog.New(slog.NewTextHandler(&logs, nil)), tc.maxSessions)
			var now syscall.Rlimit
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now)
			if now.Cur != orig.Max {
				t.Fatalf("soft limit %d, want the hard limit %d", now.Cur, orig.Max)
			}
			if !strings.Contains(logs.String(), tc.want) {
				t.Fatalf("log lacks %q:\n%s", tc.want, logs.String())
			}
		})
	}
}
