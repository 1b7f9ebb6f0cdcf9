package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Validate checks what can be checked without reading other files or
// knowing what other packages make of a value (the daemon checks the
// listen socket and the action names when it translates them), and
// returns every problem at once, each prefixed with the config file.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.SocketMode != "" {
		if m, err := strconv.ParseUint(c.SocketMode, 8, 32); err != nil || m > 0o777 {
			add("socket_mode: %q is not an octal mode like \"0660\"", c.SocketMode)
		}
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			add("metrics_listen: %q is not host:port", c.MetricsListen)
		}
	}
	l := c.Limits
	if l.MaxSessions < 0 || l.MaxHeaderBytes < 0 {
		add("limits: max_sessions and max_header_bytes must not be negative")
	}
	if l.MaxPacketMemory != 0 && l.MaxPacketMemory < 1<<20 {
		add("limits: max_packet_memory must be 0 (no limit) or at least 1048576 (the largest milter packet vouch accepts)")
	}
	if l.ReadTimeout < time.Second || l.WriteTimeout < time.Second || l.ShutdownTimeout < 0 {
		add("limits: read_timeout and write_timeout must be at least 1s (write a unit, e.g. \"30s\")")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level: %q is not debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add("log_format: %q is not text or json", c.LogFormat)
	}
	// A bare number in TOML decodes as nanoseconds: catch "timeout = 5".
	if c.DNS.Timeout < 100*time.Millisecond {
		add("dns.timeout: %s is too short (write a unit, e.g. \"5s\")", c.DNS.Timeout)
	}
	if c.DNS.Attempts < 1 {
		add("dns.attempts: must be at least 1")
	}
	if c.DNS.CacheSize < 0 {
		add("dns.cache_size: must not be negative")
	}
	if c.Signing.SignatureTTL < 0 {
		add("signing.signature_ttl: must not be negative")
	}
	sg := c.Signing
	if sg.LDAPTimeout < 100*time.Millisecond {
		add("signing.ldap_timeout: %s is too short (write a unit, e.g. \"5s\")", sg.LDAPTimeout)
	}
	if sg.LDAPCacheTTL < 0 || (sg.LDAPCacheTTL > 0 && sg.LDAPCacheTTL < time.Second) {
		add("signing.ldap_cache_ttl: %s: write \"0s\" (off) or at least \"1s\" (write a unit)", sg.LDAPCacheTTL)
	}
	if sg.LDAPBindPassword != "" && sg.LDAPBindPasswordFile != "" {
		add("signing.ldap_bind_password and ldap_bind_password_file are both set: keep one")
	}
	if sg.LDAPBindDN != "" && sg.LDAPBindPassword == "" && sg.LDAPBindPasswordFile == "" {
		add("signing.ldap_bind_dn: set ldap_bind_password_file (or ldap_bind_password)")
	}
	if sg.LDAPBindDN == "" && (sg.LDAPBindPassword != "" || sg.LDAPBindPasswordFile != "") {
		add("signing.ldap_bind_dn: a bind password is set but no bind DN")
	}
	errs = append(errs, c.validateModes()...)
	if c.Verify.MaxSignatures < 1 {
		add("verify.max_signatures: must be at least 1")
	}
	if c.Verify.Budget < 100*time.Millisecond {
		add("verify.budget: %s is too short (write a unit, e.g. \"20s\")", c.Verify.Budget)
	}
	if c.Screen.Budget < 100*time.Millisecond {
		add("screen.budget: %s is too short (write a unit, e.g. \"20s\")", c.Screen.Budget)
	} else if c.Screen.Budget >= 30*time.Second {
		add("screen.budget: %s is not below Postfix's milter_command_timeout (30s)", c.Screen.Budget)
	}
	if c.Screen.MaxPTRNames < 1 {
		add("screen.max_ptr_names: must be at least 1")
	}
	s := c.Whitelist.Sync
	for key, u := range map[string]string{"reverse_url": s.ReverseURL, "helo_url": s.HELOURL, "mail_url": s.MailURL} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
			add("whitelist.sync.%s: %q is not an https:// URL", key, u)
		}
	}
	if s.At != "" {
		if _, err := time.Parse("15:04", s.At); err != nil {
			add("whitelist.sync.at: %q is not HH:MM", s.At)
		}
	} else if s.Interval <= 0 {
		add("whitelist.sync: set at (HH:MM) or a positive interval")
	}
	if s.MaxSize <= 0 {
		add("whitelist.sync.max_size: must be positive")
	}
	errs = append(errs, c.validateRotation()...)
	errs = append(errs, c.validateDMARCReports()...)
	return c.Problems(errs)
}

// Problems formats errs, each naming a key, as one error with a line per
// problem, sorted and prefixed with the config file; nil if there are
// none. An error may hold several lines (errors.Join): each is prefixed.
func (c *Config) Problems(errs []error) error {
	var msgs []string
	for _, e := range errs {
		if e == nil {
			continue
		}
		for _, line := range strings.Split(e.Error(), "\n") {
			msgs = append(msgs, "config "+c.Name()+": "+line)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	sort.Strings(msgs)
	return errors.New(strings.Join(msgs, "\n"))
}

// Name is the config file, or "(embedded defaults)".
func (c *Config) Name() string {
	if c.Path == "" {
		return "(embedded defaults)"
	}
	return c.Path
}

// validateRotation checks [rotation] and the next_* keys of [[signing.key]].
func (c *Config) validateRotation() []error {
	var errs []error
	r := c.Rotation
	if r.CheckInterval < time.Second/10 || r.PublishDelay < 0 || r.MaxKeyAge < 0 {
		errs = append(errs, fmt.Errorf("rotation: check_interval must be at least 100ms, publish_delay and max_key_age not negative (write a unit, e.g. \"48h\")"))
	}
	if r.StateFile == "" {
		errs = append(errs, fmt.Errorf("rotation.state_file: must be set"))
	}
	if sel := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Format(r.SelectorPattern); r.SelectorPattern == "" || strings.ContainsAny(sel, " ./_") {
		errs = append(errs, fmt.Errorf("rotation.selector_pattern: %q gives %q, not a selector (a Go time layout such as \"2006-01\")", r.SelectorPattern, sel))
	}
	for i, k := range c.Signing.Keys {
		if (k.NextSelector == "") != (k.NextPrivateKey == "") {
			errs = append(errs, fmt.Errorf("signing.key[%d]: next_selector and next_private_key go together", i))
		} else if k.NextSelector != "" && k.NextSelector == k.Selector {
			errs = append(errs, fmt.Errorf("signing.key[%d]: next_selector is the current selector %q", i, k.Selector))
		}
	}
	return errs
}

// validateDMARCReports checks [dmarc_reports]. The keys are checked also
// while it is off (a typo shows before it is turned on); what sending
// needs (org_name, from) only when it is on.
func (c *Config) validateDMARCReports() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("dmarc_reports."+format, args...)) }
	r := c.DMARCReports
	switch r.Store {
	case "bolt":
		if !filepath.IsAbs(r.Path) {
			add("path: %q is not an absolute path (the bolt store's file)", r.Path)
		}
	case "redis":
		if r.RedisURL == "" && len(r.RedisSentinels) == 0 && len(r.RedisCluster) == 0 {
			add("redis_url: must be set for store = \"redis\" (or redis_sentinels, redis_cluster)")
		}
	case "memory": // lost at exit: for tests (`vouch reports` cannot read a daemon's)
	default:
		add("store: %q is not bolt or redis", r.Store)
	}
	if _, err := time.Parse("15:04", r.SendAt); err != nil {
		add("send_at: %q is not HH:MM (UTC)", r.SendAt)
	}
	if r.Enabled && r.Send {
		if strings.TrimSpace(r.OrgName) == "" {
			add("org_name: must be set to send reports (send = true)")
		}
		if r.From == "" {
			add("from: must be set to send reports (send = true)")
		}
	}
	if r.From != "" && !plainAddress(r.From) {
		add("from: %q is not an address like dmarc-reports@example.com", r.From)
	}
	for _, f := range []struct {
		key string
		n   int64
	}{{"max_report_size", r.MaxReportSize}, {"max_message_size", r.MaxMessageSize}, {"max_xml_size", r.MaxXMLSize}} {
		if f.n <= 0 {
			add("%s: must be positive (bytes)", f.key)
		}
	}
	if r.RetryFor <= 0 || r.KeepReceived <= 0 {
		add("retry_for and keep_received: must be positive (write a unit, e.g. \"72h\")")
	}
	if r.SMTP != "" {
		if _, _, err := net.SplitHostPort(r.SMTP); err != nil {
			add("smtp: %q is not host:port", r.SMTP)
		}
	}
	for i, m := range r.RUAMailboxes {
		if !plainAddress(m) {
			add("rua_mailboxes[%d]: %q is not an address like dmarc@example.com", i, m)
		}
	}
	return errs
}

// plainAddress reports whether s is a bare address local@domain (no
// display name, no angle brackets).
func plainAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s && strings.Count(s, "@") == 1 &&
		strings.Contains(s[strings.IndexByte(s, '@')+1:], ".")
}
