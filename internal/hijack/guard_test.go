package hijack

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"vouch/internal/testutil"
)

// TestMessagesLimit: 200 accepted messages pass, the 201st is refused with
// the reply of the action; in trial mode a freeze is a 4xx.
func TestMessagesLimit(t *testing.T) {
	tests := []struct {
		name   string
		action string
		trial  bool
		want   string
	}{
		{"tempfail", ActionTempfail, false, "452 4.7.1 Sending limit of this account reached, try again later"},
		{"tempfail trial", ActionTempfail, true, "452 4.7.1 Sending limit of this account reached, try again later"},
		{"freeze", ActionFreeze, false, "550 5.7.1 Account locked for unusual sending activity, contact your administrator"},
		{"freeze trial", ActionFreeze, true, "450 4.7.1 Account locked for unusual sending activity, contact your administrator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			cfg := testConfig(t, c)
			cfg.Action, cfg.Trial = tc.action, tc.trial
			g := newGuard(t, cfg)
			for i := 1; i <= 200; i++ {
				if r := send(g, "alice@example.com", ip1, 1); r != nil {
					t.Fatalf("message %d refused: %s", i, r)
				}
				c.Advance(time.Second)
			}
			r := send(g, "alice@example.com", ip1, 1)
			if got := replyString(r); got != tc.want {
				t.Fatalf("message 201: got %q, want %q", got, tc.want)
			}
			// RFC 3463: the class of the enhanced code follows the basic code.
			if r.EnhancedCode()[0] != r.String()[0] {
				t.Fatalf("class mismatch in %s", r)
			}
			// Refused messages do not count, other logins are not affected.
			if r := send(g, "bob@example.com", ip1, 1); r != nil {
				t.Fatalf("bob refused: %s", r)
			}
			st := g.Stats()
			if tc.action == ActionFreeze && (st.Freezes != 1 || st.FrozenRefused != 1) {
				t.Fatalf("stats %+v", st)
			}
			if tc.action == ActionTempfail && st.Limited != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestSlidingWindow: a message counts for exactly one window after it was
// accepted; a tempfailed account sends again as soon as its oldest message
// leaves the window, a frozen one does not.
func TestSlidingWindow(t *testing.T) {
	type step struct {
		at   time.Duration // since the start
		want string        // "ok" or the reply's code
	}
	tests := []struct {
		name   string
		action string
		steps  []step
	}{
		{"tempfail", ActionTempfail, []step{
			{0, "ok"}, {time.Minute, "ok"}, {2 * time.Minute, "ok"},
			{3 * time.Minute, "452"},
			{10*time.Minute - time.Millisecond, "452"}, // the first is still in the window
			{10 * time.Minute, "ok"},                   // the first left: one more
			{10*time.Minute + time.Second, "452"},      // full again
			{11 * time.Minute, "ok"},                   // the second left
			{25 * time.Minute, "ok"}, {25 * time.Minute, "ok"}, {25 * time.Minute, "ok"}, {25 * time.Minute, "452"},
		}},
		{"freeze does not slide", ActionFreeze, []step{
			{0, "ok"}, {time.Minute, "ok"}, {2 * time.Minute, "ok"},
			{3 * time.Minute, "550"},
			{time.Hour, "550"},
			{24 * time.Hour, "550"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			start := c.Now()
			cfg := testConfig(t, c)
			cfg.Messages, cfg.Window, cfg.Action = 3, 10*time.Minute, tc.action
			g := newGuard(t, cfg)
			for i, s := range tc.steps {
				c.Advance(start.Add(s.at).Sub(c.Now()))
				got := replyString(send(g, "alice@example.com", ip1, 1))
				if got != "ok" {
					got = got[:3]
				}
				if got != s.want {
					t.Fatalf("step %d at +%s: got %s, want %s", i, s.at, got, s.want)
				}
			}
		})
	}
}

// TestRecipientsLimit: recipients of accepted messages count; MAIL FROM is
// refused once the window holds the limit; with the freeze action a
// message that goes past the limit freezes the account at once.
func TestRecipientsLimit(t *testing.T) {
	tests := []struct {
		name   string
		action string
		rcpts  []int    // recipients per message, in order
		want   []string // "ok" or reply code per message
	}{
		{"below", ActionTempfail, []int{4, 5}, []string{"ok", "ok"}},
		{"reaching the limit stops the next", ActionTempfail, []int{6, 4, 1}, []string{"ok", "ok", "452"}},
		{"the message that crosses it goes out whole", ActionTempfail, []int{8, 5, 1}, []string{"ok", "ok", "452"}},
		{"freeze: crossing freezes at end of message", ActionFreeze, []int{8, 5, 1, 1}, []string{"ok", "ok", "550", "550"}},
		{"freeze: one huge message", ActionFreeze, []int{50, 1}, []string{"ok", "550"}},
		{"freeze: exactly the limit is not over", ActionFreeze, []int{10}, []string{"ok"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			cfg := testConfig(t, c)
			cfg.Recipients, cfg.Action = 10, tc.action
			g := newGuard(t, cfg)
			for i, n := range tc.rcpts {
				got := replyString(send(g, "alice@example.com", ip1, n))
				if got != "ok" {
					got = got[:3]
				}
				if got != tc.want[i] {
					t.Fatalf("message %d (%d rcpts): got %s, want %s", i+1, n, got, tc.want[i])
				}
			}
		})
	}
}

// TestExempt: exempt logins (whitelist grammar) are never limited; bare
// logins match host-name entries.
func TestExempt(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "exempt")
	os.WriteFile(file, []byte(`# accounts that send newsletters
*@lists.example.org
ops@example.com     ; monitoring
svc-backup
report-*
12345
`), 0o644)
	tests := []struct {
		login  string
		exempt bool
	}{
		{"anyone@lists.example.org", true},
		{"Someone@Lists.Example.ORG", true},
		{"ops@example.com", true},
		{" OPS@example.com ", true},
		{"alice@example.com", false},
		{"svc-backup", true},
		{"SVC-Backup", true},
		{"svc-backup2", false},
		{"svc-backup@example.com", false},
		{"report-daily", true},
		{"12345", false}, // the grammar reads it as a bad IP address: not listed
		{"alice", false},
	}
	c := newClock()
	cfg := testConfig(t, c)
	cfg.Messages, cfg.ExemptFile = 1, file
	g := newGuard(t, cfg)
	for _, tc := range tests {
		t.Run(tc.login, func(t *testing.T) {
			send(g, tc.login, ip1, 1)
			second := send(g, tc.login, ip1, 1)
			if (second == nil) != tc.exempt {
				t.Fatalf("exempt=%v, second message: %s", tc.exempt, replyString(second))
			}
		})
	}
}

// TestLoginNormalised: case and surrounding space do not make a new
// account; a login-less AUTH ("(PLAIN)", the milter's stand-in when
// {auth_authen} is missing) is not limited.
func TestLoginNormalised(t *testing.T) {
	c := newClock()
	cfg := testConfig(t, c)
	cfg.Messages = 2
	g := newGuard(t, cfg)
	send(g, "Alice@Example.com", ip1, 1)
	send(g, " alice@example.com", ip1, 1)
	if r := send(g, "ALICE@EXAMPLE.COM", ip1, 1); r == nil {
		t.Fatal("third message of the same login accepted")
	}
	for i := 0; i < 5; i++ {
		if r := send(g, "(PLAIN)", ip1, 1); r != nil {
			t.Fatalf("(PLAIN) limited: %s", r)
		}
	}
	if r := send(g, "", ip1, 1); r != nil {
		t.Fatalf("empty login limited: %s", r)
	}
}

// TestFreezePersistence: a freeze survives a restart (a new Guard on the
// same state file); the file is written atomically and a release is
// persisted too.
func TestFreezePersistence(t *testing.T) {
	c := newClock()
	cfg := testConfig(t, c)
	cfg.Messages, cfg.Action = 2, ActionFreeze
	cfg.StateFile = filepath.Join(t.TempDir(), "sub", "frozen.json") // the directory is created
	g, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	send(g, "mallory@example.com", ip1, 1)
	send(g, "mallory@example.com", ip2, 1)
	if r := send(g, "mallory@example.com", ip1, 1); r == nil || r.Code != 550 {
		t.Fatalf("not frozen: %s", replyString(r))
	}
	g.Close()

	data, err := os.ReadFile(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if len(st.Frozen) != 1 || st.Frozen[0].Login != "mallory@example.com" || st.Frozen[0].Messages != 2 ||
		strings.Join(st.Frozen[0].IPs, ",") != "192.0.2.7,2001:db8::25" || !strings.Contains(st.Frozen[0].Reason, "messages limit reached: 2 in 30m0s") {
		t.Fatalf("state file:\n%s", data)
	}
	if fi, _ := os.Stat(cfg.StateFile); fi.Mode().Perm() != 0o640 {
		t.Fatalf("state file mode %v", fi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(cfg.StateFile))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}

	// Restart, a day later: still frozen, without a message in the window.
	c.Advance(24 * time.Hour)
	g2 := newGuard(t, cfg)
	if r := send(g2, "Mallory@example.com", ip1, 1); r == nil || r.Code != 550 {
		t.Fatalf("freeze lost in restart: %s", replyString(r))
	}
	if was, err := g2.Release(ctx(), "MALLORY@example.com", "test"); !was || err != nil {
		t.Fatalf("release: %v %v", was, err)
	}
	if r := send(g2, "mallory@example.com", ip1, 1); r != nil {
		t.Fatalf("released account refused: %s", r)
	}
	g2.Close()
	g3 := newGuard(t, cfg)
	if r := send(g3, "mallory@example.com", ip1, 1); r != nil {
		t.Fatalf("release not persisted: %s", r)
	}
}

// TestStateFileCorrupt: a state file that cannot be read stops New
// instead of silently releasing every frozen account.
func TestStateFileCorrupt(t *testing.T) {
	cfg := testConfig(t, newClock())
	os.WriteFile(cfg.StateFile, []byte(`{"version":1,"frozen":[{"login":`), 0o640)
	if _, err := New(cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), cfg.StateFile) {
		t.Fatalf("got %v", err)
	}
}

// TestNotificationOncePerFreeze: the postmaster gets one mail per freeze,
// however many messages are refused afterwards, with what the admin needs.
func TestNotificationOncePerFreeze(t *testing.T) {
	sink := testutil.NewSMTPServer(t)
	c := newClock()
	cfg := testConfig(t, c)
	cfg.Messages, cfg.Action = 3, ActionFreeze
	cfg.Postmaster, cfg.NotifySMTP, cfg.NotifyFrom = "postmaster@example.com", sink.Addr, "vouch@mx.example.com"
	g := newGuard(t, cfg)
	send(g, "alice@example.com", ip1, 2)
	send(g, "alice@example.com", ip2, 1)
	send(g, "alice@example.com", ip1, 3)
	for i := 0; i < 5; i++ {
		if r := send(g, "alice@example.com", ip2, 1); r == nil || r.Code != 550 {
			t.Fatalf("attempt %d: %s", i, replyString(r))
		}
	}
	mails := sink.Wait(t, 1)
	time.Sleep(100 * time.Millisecond)
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d notifications for one freeze", n)
	}
	m := mails[0]
	if m.From != "vouch@mx.example.com" || len(m.To) != 1 || m.To[0] != "postmaster@example.com" {
		t.Fatalf("envelope %q -> %q", m.From, m.To)
	}
	for _, want := range []string{
		"Subject: vouch: account alice@example.com frozen\r\n",
		"To: <postmaster@example.com>\r\n",
		"Auto-Submitted: auto-generated\r\n",
		"Login:       alice@example.com\r\n",
		"Messages:    3 in the last 30m0s (limit 3)\r\n",
		"Recipients:  6 in the last 30m0s (limit 500)\r\n",
		"Client IPs:  192.0.2.7, 2001:db8::25\r\n",
		"Recipients (sample of the latest 3):\r\n  rcpt0@dest.example\r\n  rcpt1@dest.example\r\n  rcpt2@dest.example\r\n",
		"550 5.7.1 Account locked",
		"  vouch accounts release alice@example.com\r\n",
	} {
		if !strings.Contains(m.Data, want) {
			t.Errorf("notification lacks %q:\n%s", want, m.Data)
		}
	}
	if st := g.Stats(); st.Notifications != 1 || st.Freezes != 1 || st.FrozenRefused != 5 {
		t.Fatalf("stats %+v", st)
	}

	// A new freeze after a release is a new notification.
	g.Release(ctx(), "alice@example.com", "test")
	for i := 0; i < 4; i++ {
		send(g, "alice@example.com", ip1, 1)
	}
	sink.Wait(t, 2)

	// A login crafted to add header lines cannot.
	evil := "eve@example.com\r\nBcc: victim@example.net"
	for i := 0; i < 4; i++ {
		send(g, evil, ip1, 1)
	}
	m = sink.Wait(t, 3)[2]
	if strings.Contains(m.Data, "\r\nBcc:") || !strings.Contains(m.Data, "Subject: vouch: account eve@example.com??bcc: victim@example.net frozen\r\n") {
		t.Fatalf("header injection:\n%s", m.Data)
	}
	g.Close()
	if n := len(sink.Messages()); n != 3 {
		t.Fatalf("%d notifications", n)
	}
}

// TestNotificationFailure: an unreachable MTA is counted and logged; the
// freeze holds.
func TestNotificationFailure(t *testing.T) {
	c := newClock()
	cfg := testConfig(t, c)
	cfg.Messages, cfg.Action = 1, ActionFreeze
	cfg.Postmaster, cfg.NotifySMTP = "postmaster@example.com", "127.0.0.1:1"
	g := newGuard(t, cfg)
	send(g, "alice@example.com", ip1, 1)
	if r := send(g, "alice@example.com", ip1, 1); r == nil || r.Code != 550 {
		t.Fatalf("got %s", replyString(r))
	}
	g.Close()
	if st := g.Stats(); st.NotifyErrors != 1 || st.Notifications != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDisabled: a disabled section gives a nil Guard that limits nothing.
func TestDisabled(t *testing.T) {
	g, err := New(Config{}, nil)
	if err != nil || g != nil {
		t.Fatalf("got %v, %v", g, err)
	}
	if r := g.CheckSender(ctx(), "alice", ip1); r != nil {
		t.Fatal(r)
	}
	g.Accepted(ctx(), "alice", ip1, nil)
	g.Close()
	_ = g.Stats()
}

// TestValidate: every problem is reported with its key.
func TestValidate(t *testing.T) {
	cfg := Config{Enabled: true, Messages: -1, Window: time.Millisecond, Action: "bounce", Backend: "etcd",
		Postmaster: "not an address", NotifySMTP: "localhost"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"hijack.messages", "hijack.window", `hijack.action: unknown action "bounce"`,
		`hijack.backend: unknown backend "etcd"`, "hijack.postmaster", "hijack.notify_smtp"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if err := (Config{Enabled: true, Backend: BackendRedis}).Validate(); err == nil || !strings.Contains(err.Error(), "hijack.redis_url: required") {
		t.Errorf("redis without url: %v", err)
	}
	if err := (Config{Enabled: true, Backend: BackendRedis, RedisURL: "http://x"}).Validate(); err == nil || !strings.Contains(err.Error(), "hijack.redis_url") {
		t.Errorf("bad url: %v", err)
	}
	valid := testConfig(t, newClock())
	if err := valid.Validate(); err != nil {
		t.Errorf("test config: %v", err)
	}
	valid.Postmaster = "postmaster"
	if err := valid.Validate(); err != nil {
		t.Errorf("bare postmaster: %v", err)
	}
	// No defaults here (they are in default.toml): zero limits are refused,
	// and a freeze that could not survive a restart too.
	zero := Config{Enabled: true, Action: ActionFreeze, Backend: BackendMemory}
	err = zero.Validate()
	for _, want := range []string{"hijack.messages", "hijack.recipients", "hijack.window", "hijack.state_file", "hijack.notify_smtp", "hijack.notify_from"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("zero config: missing %q in %v", want, err)
		}
	}
}

// TestSweep: logins with nothing left in the window are forgotten.
func TestSweep(t *testing.T) {
	c := newClock()
	g := newGuard(t, testConfig(t, c))
	send(g, "alice@example.com", ip1, 1)
	c.Advance(29 * time.Minute)
	send(g, "bob@example.com", ip1, 1)
	c.Advance(2 * time.Minute)
	g.local.sweep(c.Now())
	if _, ok := g.local.accounts["alice@example.com"]; ok {
		t.Fatal("alice kept")
	}
	if _, ok := g.local.accounts["bob@example.com"]; !ok {
		t.Fatal("bob dropped")
	}
}

// TestStateFileWriteFails: a freeze that cannot be written holds in memory
// and is counted and logged.
func TestStateFileWriteFails(t *testing.T) {
	c := newClock()
	cfg := testConfig(t, c)
	cfg.Messages, cfg.Action = 1, ActionFreeze
	cfg.StateFile = filepath.Join(t.TempDir(), "state", "frozen.json")
	g := newGuard(t, cfg)
	os.RemoveAll(filepath.Dir(cfg.StateFile))
	send(g, "alice@example.com", ip1, 1)
	if r := send(g, "alice@example.com", ip1, 1); r == nil || r.Code != 550 {
		t.Fatalf("got %s", replyString(r))
	}
	if r := send(g, "alice@example.com", ip1, 1); r == nil || r.Code != 550 {
		t.Fatalf("freeze not held in memory: %s", replyString(r))
	}
	if st := g.Stats(); st.StateErrors != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestValidateRedisAndRelease: the keys of Sentinel, Cluster and release
// by reply, each problem naming its key.
func TestValidateRedisAndRelease(t *testing.T) {
	base := testConfig(t, newClock())
	base.Backend, base.Postmaster = BackendRedis, "pm@example.com"
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" means valid
	}{
		{"sentinel", func(c *Config) { c.RedisSentinels, c.RedisMasterName = []string{"127.0.0.1:26379"}, "m" }, ""},
		{"sentinel without master", func(c *Config) { c.RedisSentinels = []string{"127.0.0.1:26379"} }, "hijack.redis_master_name: required"},
		{"sentinel not host:port", func(c *Config) { c.RedisSentinels, c.RedisMasterName = []string{"localhost"}, "m" }, `"localhost" is not host:port`},
		{"cluster", func(c *Config) { c.RedisCluster = []string{"127.0.0.1:7000"} }, ""},
		{"both", func(c *Config) {
			c.RedisCluster, c.RedisSentinels, c.RedisMasterName = []string{"127.0.0.1:7000"}, []string{"127.0.0.1:26379"}, "m"
		}, "hijack.redis_cluster: use either"},
		{"release", func(c *Config) {
			c.RedisURL, c.ReleaseAddress, c.ReleaseTokenTTL, c.ReleaseKeyFile = "redis://127.0.0.1:6379/0", "vouch-release@example.com", time.Hour, "/k"
		}, ""},
		{"release address with +", func(c *Config) {
			c.RedisURL, c.ReleaseAddress, c.ReleaseTokenTTL, c.ReleaseKeyFile = "redis://127.0.0.1:6379/0", "a+b@example.com", time.Hour, "/k"
		}, "hijack.release_address"},
		{"release local part too long", func(c *Config) {
			c.RedisURL, c.ReleaseAddress, c.ReleaseTokenTTL, c.ReleaseKeyFile = "redis://127.0.0.1:6379/0", strings.Repeat("x", 25)+"@example.com", time.Hour, "/k"
		}, "too long"},
		{"release without ttl, key and postmaster", func(c *Config) {
			c.RedisURL, c.ReleaseAddress, c.Postmaster = "redis://127.0.0.1:6379/0", "vouch-release@example.com", ""
		}, "hijack.release_token_ttl"},
	} {
		c := base
		tc.edit(&c)
		err := c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
