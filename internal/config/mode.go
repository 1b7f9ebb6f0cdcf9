package config

import "fmt"

// The trial/enforce mode: one top-level key for every refusal vouch makes,
// with per-section overrides (verify.mode, hijack.trial, and the older
// screen.mode, which still works but is deprecated).

const (
	modeTrial   = "trial"
	modeEnforce = "enforce"
)

// ScreenMode is the mode of the screen's refusals: screen.mode when set
// (deprecated), else the top-level mode, else trial.
func (c *Config) ScreenMode() string {
	return firstMode(c.Screen.Mode, c.Mode, modeTrial)
}

// VerifyMode is the mode of verification refusals: verify.mode, else
// screen.mode (which decided it before the top-level key existed), else
// the top-level mode, else trial.
func (c *Config) VerifyMode() string {
	return firstMode(c.Verify.Mode, c.Screen.Mode, c.Mode, modeTrial)
}

// HijackTrial reports whether hijack freezes are answered with 4xx:
// hijack.trial, or the top-level mode "trial".
func (c *Config) HijackTrial() bool {
	return c.Hijack.Trial || c.Mode == modeTrial
}

// Deprecations are warnings for keys that still work but should change.
func (c *Config) Deprecations() []string {
	if c.Screen.Mode == "" {
		return nil
	}
	return []string{fmt.Sprintf("screen.mode is deprecated: set the top-level mode = %q instead (it applies to the screen, verification and hijack freezes; verify.mode overrides it for verification)", c.Screen.Mode)}
}

func (c *Config) validateModes() []error {
	var errs []error
	for key, v := range map[string]string{"mode": c.Mode, "screen.mode": c.Screen.Mode, "verify.mode": c.Verify.Mode} {
		if v != "" && v != modeTrial && v != modeEnforce {
			errs = append(errs, fmt.Errorf("%s: %q is neither \"trial\" nor \"enforce\"", key, v))
		}
	}
	return errs
}

func firstMode(modes ...string) string {
	for _, m := range modes {
		if m != "" {
			return m
		}
	}
	return ""
}
