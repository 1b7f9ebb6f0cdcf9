package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModes: the top-level mode decides every refusal; verify.mode,
// hijack.trial and the deprecated screen.mode override it, and
// screen.mode warns.
func TestModes(t *testing.T) {
	tests := []struct {
		name, toml           string
		screen, verify       string
		hijackTrial, warning bool
		err                  string
	}{
		{"defaults", "", "trial", "trial", false, false, ""},
		{"top-level enforce", `mode = "enforce"`, "enforce", "enforce", false, false, ""},
		{"top-level trial", `mode = "trial"`, "trial", "trial", true, false, ""},
		{"verify override", "mode = \"enforce\"\n[verify]\nmode = \"trial\"", "enforce", "trial", false, false, ""},
		{"hijack override", "mode = \"enforce\"\n[hijack]\ntrial = true", "enforce", "enforce", true, false, ""},
		{"deprecated screen.mode still decides screen and verify", "[screen]\nmode = \"enforce\"", "enforce", "enforce", false, true, ""},
		{"screen.mode beats the top-level mode", "mode = \"trial\"\n[screen]\nmode = \"enforce\"", "enforce", "enforce", true, true, ""},
		{"bad mode", `mode = "strict"`, "", "", false, false, `mode: "strict" is neither "trial" nor "enforce"`},
		{"bad verify.mode", "[verify]\nmode = \"on\"", "", "", false, false, `verify.mode: "on" is neither`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vouch.toml")
			if err := os.WriteFile(path, []byte(tc.toml+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ScreenMode() != tc.screen || c.VerifyMode() != tc.verify || c.HijackTrial() != tc.hijackTrial {
				t.Errorf("screen %q verify %q hijack trial %v", c.ScreenMode(), c.VerifyMode(), c.HijackTrial())
			}
			if d := c.Deprecations(); (len(d) > 0) != tc.warning || tc.warning && !strings.Contains(d[0], "screen.mode is deprecated: set the top-level mode") {
				t.Errorf("deprecations %q", d)
			}
		})
	}
}
