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
	if c.Listen != "inet:8891@localhost" || c.ScreenMode() != "trial" || c.VerifyMode() != "trial" || c.HijackTrial() || !c.Signing.RequireSafeKeys {
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
		{"unknown key", "lisen = \"inet:1@localhost\"\n", []string{"vouch.toml:1: unknown key lisen (did you mean listen?)"}},
		{"unknown nested key", "[signing]\nkey_tabel = \"/x\"\n", []string{"unknown key signing.key_tabel"}},
		{"syntax error", "listen = \"inet:1@localhost\"\nlog_level = \n", []string{"vouch.toml:2:"}},
		{"wrong type", "[dns]\ntimeout = true\n", []string{"vouch.toml", "dns.timeout"}},
		{"duration without unit", "[dns]\ntimeout = 5\n", []string{"dns.timeout: 5ns is too short"}},
		{"budget too long", "[screen]\nbudget = \"45s\"\n", []string{"screen.budget: 45s is not below"}},
		{"packet memory below the largest packet", "[limits]\nmax_packet_memory = 65536\n", []string{"limits: max_packet_memory must be 0 (no limit) or at least 1048576"}},
		{"plain http sync", "[whitelist.sync]\nmail_url = \"http://example.com/x.dat\"\n", []string{"whitelist.sync.mail_url"}},
		{"bad time of day", "[whitelist.sync]\nat = \"25:00\"\n", []string{`whitelist.sync.at: "25:00"`}},
		{"several problems at once", "log_level = \"loud\"\nlog_format = \"xml\"\n[dns]\nattempts = 0\n", []string{"log_level", "log_format", "dns.attempts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(testutil.WriteTemp(t, "vouch.toml", tc.content))
			testutil.ErrorMentions(t, err, tc.want...)
		})
	}
}

// TestErrorsTeach: each mistake is reported with its line and key, in
// words that say what to write instead.
func TestErrorsTeach(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"typo in a table", "[signing]\nkey_tabel = \"/x\"\n", "vouch.toml:2: unknown key signing.key_tabel (did you mean signing.key_table?)"},
		{"key outside its table", "\ntimeout = \"5s\"\n", "vouch.toml:2: unknown key timeout (did you mean dns.timeout or whitelist.sync.timeout? a key belongs under its [table])"},
		{"unknown table", "[sigining]\nkey_table = \"/x\"\n", "vouch.toml:1: unknown key sigining (did you mean signing?)"},
		{"unknown key, nothing close", "[dns]\nfrobnicate = 1\n", "vouch.toml:2: unknown key dns.frobnicate"},
		{"string for a list", "[signing]\ninternal_hosts = \"127.0.0.1\"\n", `vouch.toml:2: signing.internal_hosts: want a list like ["127.0.0.1"], not a string`},
		{"number for a string", "listen = 8891\n", `vouch.toml:1: listen: want a string in quotes, like "inet:8891@localhost", not a number`},
		{"string for a bool", "[screen]\nenabled = \"yes\"\n", "vouch.toml:2: screen.enabled: want true or false, not a string"},
		{"string for a number", "[dns]\nattempts = \"3\"\n", "vouch.toml:2: dns.attempts: want a whole number, like "},
		{"bad duration", "[dns]\ntimeout = \"5 seconds\"\n", `vouch.toml:2: dns.timeout: "5 seconds" is not a duration: write a number and a unit, like "5s"`},
		{"bool for a duration", "[hijack]\nwindow = true\n", `vouch.toml:2: hijack.window: want a duration in quotes, like "30m", not true or false`},
		{"value for a table", "screen = 1\n", "vouch.toml:1: screen: want a table: a line [screen], then its keys, not a number"},
		{"number for texts", "[screen.ptr]\nreplies = 1\n", "vouch.toml:2: screen.ptr.replies: want a table of texts"},
		{"table for inline keys", "[[signing.key]]\ndomain = 1\nselector = \"s\"\n", "vouch.toml:2: signing.key.domain: want a string in quotes"},
		{"unknown key in a key", "[[signing.key]]\ndomain = \"example.com\"\nselectr = \"s\"\n", "vouch.toml:3: unknown key signing.key.selectr (did you mean signing.key.selector?)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(testutil.WriteTemp(t, "vouch.toml", tc.content))
			testutil.ErrorMentions(t, err, tc.want)
		})
	}
}

// TestAllProblemsAtOnce: one run reports every problem of the file, in
// the order of its lines.
func TestAllProblemsAtOnce(t *testing.T) {
	_, err := Load(testutil.WriteTemp(t, "vouch.toml", `lisen = "inet:1@localhost"
[signing]
internal_hosts = "127.0.0.1"
key_tabel = "/x"
[dns]
timeout = "5 seconds"
attempts = "3"
`))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{":1: unknown key lisen", ":3: signing.internal_hosts", ":4: unknown key signing.key_tabel", ":6: dns.timeout", ":7: dns.attempts"}
	if len(lines) != len(want) {
		t.Fatalf("want %d problems, got:\n%v", len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("problem %d: %q lacks %q", i, lines[i], w)
		}
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/vouch.toml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/vouch.toml") {
		t.Fatalf("got %v", err)
	}
}
