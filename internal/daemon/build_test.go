package daemon

import (
	"testing"

	"vouch/internal/config"
)

// The [hijack] defaults are written once, in default.toml: turned on as
// they are, they must make a valid section.
func TestHijackDefaultsAreValid(t *testing.T) {
	cfg := config.Default()
	if cfg.Hijack.Enabled {
		t.Fatal("hijack detection must be off by default")
	}
	cfg.Hijack.Enabled = true
	hc := HijackConfig(cfg)
	if err := hc.Validate(); err != nil {
		t.Fatal(err)
	}
	if hc.Messages != 200 || hc.Window.Minutes() != 30 || hc.Action != "tempfail" || !hc.RedisFailOpen || hc.AdminSocket != "/run/vouch/admin.sock" {
		t.Fatalf("defaults: %+v", hc)
	}
}
