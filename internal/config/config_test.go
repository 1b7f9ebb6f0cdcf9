package config

import (
	"strings"
	"testing"
	"time"

	"vouch/internal/testutil"
)

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "inet:8891@localhost" || c.Screen.Mode != "trial" || !c.Signing.RequireSafeKeys {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if got := strings.Join(c.Signing.InternalHosts, ","); got != "127.0.0.1,::1" {
		t.Fatalf("internal_hosts default %q", got)
	}
	// The conservative defaults the screen promises on a fresh install.
	want := map[string]map[string]string{
		"ptr":  {"no_record": "reject", "no_match": "log", "temp_error": "tempfail"},
		"helo": {"invalid": "log", "not_found": "reject", "forged": "log", "temp_error": "tempfail"},
		"mail": {"not_found": "reject", "no_mx": "accept", "null_mx": "reject", "forged": "log", "temp_error": "tempfail"},
	}
	got := map[string]map[string]string{"ptr": c.Screen.PTR.Actions, "helo": c.Screen.HELO.Actions, "mail": c.Screen.Mail.Actions}
	for check, outcomes := range want {
		for o, a := range outcomes {
			if got[check][o] != a {
				t.Errorf("screen.%s.%s = %q, want %q", check, o, got[check][o], a)
			}
		}
		if len(got[check]) != len(outcomes) {
			t.Errorf("screen.%s has %v", check, got[check])
		}
	}
}

func TestFileOverlaysDefaults(t *testing.T) {
	p := testutil.WriteTemp(t, "vouch.toml", `
listen = "unix:/run/vouch/vouch.sock"
[dns]
servers = ["192.0.2.53:53"]
[screen]
mode = "enforce"
[screen.ptr]
no_match = "reject"
[screen.ptr.replies]
no_match = "Fix your reverse DNS, %ip%"
`)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "unix:/run/vouch/vouch.sock" || c.DNS.Timeout != 5*time.Second || c.Screen.Mode != "enforce" {
		t.Fatalf("overlay: %+v", c)
	}
	if c.Screen.PTR.Actions["no_match"] != "reject" || c.Screen.PTR.Actions["no_record"] != "reject" || !c.Screen.PTR.Enabled {
		t.Fatalf("ptr: %+v", c.Screen.PTR)
	}
	if c.Screen.PTR.Replies["no_match"] != "Fix your reverse DNS, %ip%" {
		t.Fatalf("reply text: %+v", c.Screen.PTR.Replies)
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string // each must appear in the error
	}{
		{"unknown key", "lisen = \"inet:1@localhost\"\n", []string{"vouch.toml: unknown key lisen"}},
		{"unknown nested key", "[signing]\nkey_tabel = \"/x\"\n", []string{"unknown key signing.key_tabel"}},
		{"syntax error", "listen = \"inet:1@localhost\"\nlog_level = \n", []string{"vouch.toml:2:"}},
		{"wrong type", "[dns]\ntimeout = true\n", []string{"vouch.toml", "dns.timeout"}},
		{"duration without unit", "[dns]\ntimeout = 5\n", []string{"dns.timeout: 5ns is too short"}},
		{"budget too long", "[screen]\nbudget = \"45s\"\n", []string{"screen.budget: 45s is not below"}},
		{"plain http sync", "[whitelist.sync]\nmail_url = \"http://example.com/x.dat\"\n", []string{"whitelist.sync.mail_url"}},
		{"bad time of day", "[whitelist.sync]\nat = \"25:00\"\n", []string{`whitelist.sync.at: "25:00"`}},
		{"several problems at once", "log_level = \"loud\"\nlog_format = \"xml\"\n[dns]\nattempts = 0\n", []string{"log_level", "log_format", "dns.attempts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(testutil.WriteTemp(t, "vouch.toml", tc.content))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/vouch.toml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/vouch.toml") {
		t.Fatalf("got %v", err)
	}
}
