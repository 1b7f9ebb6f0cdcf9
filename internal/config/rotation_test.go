package config

import (
	"strings"
	"testing"
	"time"

	"vouch/internal/testutil"
)

// TestRotationConfig: the [rotation] defaults, and the errors for its keys
// and for next_selector/next_private_key.
func TestRotationConfig(t *testing.T) {
	r := Default().Rotation
	if r.CheckInterval != time.Hour || r.PublishDelay != 48*time.Hour || !r.AutoSwitch ||
		r.StateFile != "/var/lib/vouch/rotation.json" || r.MaxKeyAge != 4320*time.Hour || r.SelectorPattern != "2006-01" {
		t.Fatalf("defaults %+v", r)
	}
	key := "[[signing.key]]\ndomain = \"example.com\"\nselector = \"a\"\nprivate_key = \"/k/a\"\n"
	cases := []struct {
		name, toml, want string // want "": valid
	}{
		{"next key", key + "next_selector = \"b\"\nnext_private_key = \"/k/b\"\n", ""},
		{"short delays for tests", "[rotation]\ncheck_interval = \"200ms\"\npublish_delay = \"2s\"\n", ""},
		{"selector without key", key + "next_selector = \"b\"\n", "signing.key[0]: next_selector and next_private_key go together"},
		{"key without selector", key + "next_private_key = \"/k/b\"\n", "next_selector and next_private_key go together"},
		{"next is current", key + "next_selector = \"a\"\nnext_private_key = \"/k/b\"\n", "next_selector is the current selector"},
		{"interval without unit", "[rotation]\ncheck_interval = 3600\n", "check_interval must be at least 100ms"},
		{"negative delay", "[rotation]\npublish_delay = \"-1h\"\n", "publish_delay"},
		{"no state file", "[rotation]\nstate_file = \"\"\n", "rotation.state_file: must be set"},
		{"pattern with a dot", "[rotation]\nselector_pattern = \"2006.01\"\n", "not a selector"},
		{"unknown key", "[rotation]\nswitch_after = \"1h\"\n", "unknown key rotation.switch_after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(testutil.WriteTemp(t, "vouch.toml", tc.toml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
