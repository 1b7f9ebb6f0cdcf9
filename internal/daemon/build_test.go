package daemon

import (
	"reflect"
	"testing"

	"vouch/internal/config"
	"vouch/internal/hijack"
)

// The [hijack] defaults live in default.toml and, for zero values, in the
// hijack package: they must say the same.
func TestHijackDefaultsAgree(t *testing.T) {
	got := HijackConfig(config.Default())
	want := hijack.DefaultConfig()
	got.Now, want.Now = nil, nil
	if got.Enabled || want.Enabled {
		t.Fatal("hijack detection must be off by default")
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("default.toml gives %+v\nhijack.DefaultConfig is %+v", got, want)
	}
}
