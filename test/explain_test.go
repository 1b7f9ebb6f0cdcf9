package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExplain runs `vouch explain` against the screening zone: it must
// show the DNS answers, the whitelist line, the outcome, the action and
// the exact reply, and exit 0/1/2 for accept/tempfail/reject.
func TestExplain(t *testing.T) {
	dir := t.TempDir()
	z := newZone(t, screenZone...)
	write(t, filepath.Join(dir, "ReverseXcpt.dat"), "# partners\n\n192.0.2.21\n")
	base := fmt.Sprintf(`[dns]
servers = [%q]
timeout = "1s"
[whitelist]
reverse = %q
helo = %q
mail = %q
`, z.Addr, filepath.Join(dir, "ReverseXcpt.dat"), filepath.Join(dir, "none1"), filepath.Join(dir, "none2"))
	trial := filepath.Join(dir, "trial.toml")
	write(t, trial, base)
	enforce := filepath.Join(dir, "enforce.toml")
	write(t, enforce, base+"[screen]\nmode = \"enforce\"\n")

	tests := []struct {
		name   string
		config string
		args   []string
		status int
		want   []string
	}{
		{"good client", trial, []string{"-ip", "192.0.2.10", "-helo", "mail.good.test", "-from", "a@good.test"}, 0,
			[]string{"dns: PTR 192.0.2.10: mail.good.test.", "dns: A/AAAA mail.good.test.: 192.0.2.10", "outcome: pass", "result: accept"}},
		{"no PTR in trial mode", trial, []string{"-ip", "192.0.2.20", "-helo", "mail.noptr.test", "-from", "a@good.test"}, 1,
			[]string{"dns: PTR 192.0.2.20: NXDOMAIN", "outcome: no_record", "action: reject", "trial mode: would reject", "SMTP reply to MAIL FROM: 450 4.7.25 "}},
		{"no PTR in enforce mode", enforce, []string{"-ip", "192.0.2.20", "-helo", "mail.noptr.test", "-from", "a@good.test"}, 2,
			[]string{"SMTP reply to MAIL FROM: 550 5.7.25 Reverse DNS validation failed: no PTR record for 192.0.2.20"}},
		{"whitelisted", enforce, []string{"-ip", "192.0.2.21", "-helo", "mail.listed.test"}, 0,
			[]string{"whitelisted by " + filepath.Join(dir, "ReverseXcpt.dat") + ":3 (192.0.2.21)", "result: accept"}},
		{"null MX sender", enforce, []string{"-ip", "192.0.2.10", "-helo", "mail.good.test", "-from", "x@nullmx.test"}, 2,
			[]string{"dns: MX nullmx.test: 0 .", "outcome: null_mx", "550 5.7.27"}},
		{"authenticated", enforce, []string{"-ip", "192.0.2.20", "-auth", "-from", "a@good.test"}, 0,
			[]string{"authenticated: not screened", "result: accept"}},
		{"internal host", enforce, []string{"-ip", "127.0.0.1"}, 0,
			[]string{"internal host (signing.internal_hosts entry 127.0.0.1/32)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(vouchBin, append([]string{"explain", "-config", tc.config}, tc.args...)...).CombinedOutput()
			status := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				status = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tc.status {
				t.Errorf("exit status %d, want %d", status, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

func runVouch(args ...string) (string, error) {
	out, err := exec.Command(vouchBin, args...).CombinedOutput()
	return string(out), err
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
