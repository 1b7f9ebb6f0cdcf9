// Package config is vouch's configuration: the TOML schema, the embedded
// defaults and the validation that names file, key and reason.
//
// The embedded default.toml is decoded first and the admin's file on top of
// it, so every option has exactly one default, written in one place, and an
// admin's file only needs the keys it changes. One run reports every
// problem of a file (decode.go). The package imports no other vouch
// package: what a value means to the screen, the verifier, the signer or
// the hijack guard is checked where it is translated, in internal/daemon.
package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"time"
)

// DefaultPath is read when serve is started without -config.
const DefaultPath = "/etc/vouch/vouch.toml"

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML is the embedded default configuration, commented.
func DefaultTOML() []byte { return bytes.Clone(defaultTOML) }

// Config is the whole configuration.
type Config struct {
	Listen        string `toml:"listen"`
	SocketMode    string `toml:"socket_mode"`
	SocketGroup   string `toml:"socket_group"`
	LogLevel      string `toml:"log_level"`
	LogFormat     string `toml:"log_format"`
	AuthservID    string `toml:"authserv_id"`
	MetricsListen string `toml:"metrics_listen"`
	// Mode is "trial" or "enforce" for every refusal: screen, verify,
	// hijack freezes ("" keeps each section's own default; see mode.go).
	Mode string `toml:"mode"`

	Limits    Limits    `toml:"limits"`
	DNS       DNS       `toml:"dns"`
	Signing   Signing   `toml:"signing"`
	Screen    Screen    `toml:"screen"`
	Whitelist Whitelist `toml:"whitelist"`
	Hijack    Hijack    `toml:"hijack"`
	Verify    Verify    `toml:"verify"`
	Rotation  Rotation  `toml:"rotation"`
	// DMARCReports is aggregate reporting both ways (internal/dmarcreport).
	DMARCReports DMARCReports `toml:"dmarc_reports"`

	// Path is the file this came from ("" for the embedded defaults).
	Path string `toml:"-"`
}

// Limits protect the daemon and the mail flow.
type Limits struct {
	MaxSessions     int           `toml:"max_sessions"`
	MaxHeaderBytes  int           `toml:"max_header_bytes"`
	MaxPacketMemory int64         `toml:"max_packet_memory"`
	ReadTimeout     time.Duration `toml:"read_timeout"`
	WriteTimeout    time.Duration `toml:"write_timeout"`
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`
}

// DNS configures the resolver shared by every check.
type DNS struct {
	Servers   []string      `toml:"servers"`
	Timeout   time.Duration `toml:"timeout"`
	Attempts  int           `toml:"attempts"`
	CacheSize int           `toml:"cache_size"`
}

// Signing configures outbound DKIM signing.
type Signing struct {
	InternalHosts      []string      `toml:"internal_hosts"`
	InternalHostsFile  string        `toml:"internal_hosts_file"`
	KeyTable           string        `toml:"key_table"`
	SigningTable       string        `toml:"signing_table"`
	MultipleSignatures bool          `toml:"multiple_signatures"`
	RequireSafeKeys    bool          `toml:"require_safe_keys"`
	Headers            []string      `toml:"headers"`
	Oversign           []string      `toml:"oversign"`
	SignatureTTL       time.Duration `toml:"signature_ttl"`
	Keys               []Key         `toml:"key"`

	// LDAP, for key_table/signing_table given as ldap:// URLs (OpenDKIM's
	// LDAPBindUser, LDAPBindPassword, LDAPUseTLS, LDAPTimeout).
	LDAPBindDN           string        `toml:"ldap_bind_dn"`
	LDAPBindPassword     string        `toml:"ldap_bind_password"`
	LDAPBindPasswordFile string        `toml:"ldap_bind_password_file"`
	LDAPUseTLS           bool          `toml:"ldap_use_tls"`
	LDAPTLSCAFile        string        `toml:"ldap_tls_ca_file"`
	LDAPTimeout          time.Duration `toml:"ldap_timeout"`
	LDAPCacheTTL         time.Duration `toml:"ldap_cache_ttl"`
}

// Key is one inline signing key.
type Key struct {
	Domain     string `toml:"domain"`
	Selector   string `toml:"selector"`
	PrivateKey string `toml:"private_key"`
	// The successor key, signed with once its record has been published
	// for rotation.publish_delay.
	NextSelector   string `toml:"next_selector"`
	NextPrivateKey string `toml:"next_private_key"`
}

// Rotation is the switch from a [[signing.key]] to its next key.
type Rotation struct {
	CheckInterval time.Duration `toml:"check_interval"`
	PublishDelay  time.Duration `toml:"publish_delay"`
	AutoSwitch    bool          `toml:"auto_switch"`
	StateFile     string        `toml:"state_file"`
	MaxKeyAge     time.Duration `toml:"max_key_age"`
	// SelectorPattern is the Go time layout genkey -next names keys with.
	SelectorPattern string `toml:"selector_pattern"`
}

// Screen configures the inbound PTR/HELO/MAIL checks.
type Screen struct {
	Enabled     bool          `toml:"enabled"`
	Mode        string        `toml:"mode"`
	Budget      time.Duration `toml:"budget"`
	MaxPTRNames int           `toml:"max_ptr_names"`
	PTR         Check         `toml:"ptr"`
	HELO        Check         `toml:"helo"`
	Mail        Check         `toml:"mail"`
}

// Check is one check: whether it runs, an action per outcome and optional
// reply texts per outcome. Outcomes a check does not have are an error.
type Check struct {
	Enabled bool              `toml:"enabled"`
	Actions map[string]string `toml:"-"`
	Replies map[string]string `toml:"replies"`

	// The outcome keys, decoded by name; Outcomes() lists those set.
	NoRecord  string `toml:"no_record"`
	NoMatch   string `toml:"no_match"`
	Invalid   string `toml:"invalid"`
	NotFound  string `toml:"not_found"`
	NoMX      string `toml:"no_mx"`
	NullMX    string `toml:"null_mx"`
	Forged    string `toml:"forged"`
	TempError string `toml:"temp_error"`
}

// Verify configures DKIM, SPF and DMARC verification of inbound mail.
type Verify struct {
	Enabled         bool   `toml:"enabled"`
	DMARCReject     string `toml:"dmarc_reject"`
	DMARCQuarantine string `toml:"dmarc_quarantine"`
	SPFFail         string `toml:"spf_fail"`
	DKIMFail        string `toml:"dkim_fail"`
	// DKIMFailWhenDMARCPasses: dkim_fail applies even when DMARC passes
	// (OpenDKIM's On-BadSignature).
	DKIMFailWhenDMARCPasses bool `toml:"dkim_fail_when_dmarc_passes"`
	// Mode overrides the top-level mode for verification refusals.
	Mode          string        `toml:"mode"`
	TempError     string        `toml:"temp_error"`
	MaxSignatures int           `toml:"max_signatures"`
	Budget        time.Duration `toml:"budget"`
	Allowlist     string        `toml:"allowlist"`
}

// Hijack is account hijack detection: sending limits per SMTP AUTH login.
type Hijack struct {
	Enabled       bool          `toml:"enabled"`
	Messages      int           `toml:"messages"`
	Recipients    int           `toml:"recipients"`
	Window        time.Duration `toml:"window"`
	Action        string        `toml:"action"`
	ExemptFile    string        `toml:"exempt_file"`
	Postmaster    string        `toml:"postmaster"`
	NotifySMTP    string        `toml:"notify_smtp"`
	NotifyFrom    string        `toml:"notify_from"`
	StateFile     string        `toml:"state_file"`
	AdminSocket   string        `toml:"admin_socket"`
	Backend       string        `toml:"backend"`
	RedisURL      string        `toml:"redis_url"`
	RedisFailOpen bool          `toml:"redis_fail_open"`
	Trial         bool          `toml:"trial"`

	RedisSentinels        []string `toml:"redis_sentinels"`
	RedisMasterName       string   `toml:"redis_master_name"`
	RedisCluster          []string `toml:"redis_cluster"`
	RedisUsername         string   `toml:"redis_username"`
	RedisPassword         string   `toml:"redis_password"`
	RedisSentinelPassword string   `toml:"redis_sentinel_password"`

	ReleaseAddress  string        `toml:"release_address"`
	ReleaseTokenTTL time.Duration `toml:"release_token_ttl"`
	ReleaseKeyFile  string        `toml:"release_key_file"`
}

// DMARCReports is DMARC aggregate reporting: the reports vouch sends about
// the mail it verified, and the ones receivers send to the admin's rua
// mailboxes.
type DMARCReports struct {
	Enabled bool `toml:"enabled"`
	// Store: "bolt" (the file in Path) or "redis" (shared by a fleet).
	Store string `toml:"store"`
	Path  string `toml:"path"`

	// Sending.
	Send             bool          `toml:"send"`
	SendAt           string        `toml:"send_at"` // HH:MM UTC
	OrgName          string        `toml:"org_name"`
	From             string        `toml:"from"`
	ExtraContactInfo string        `toml:"extra_contact_info"`
	SMTP             string        `toml:"smtp"`
	MaxReportSize    int64         `toml:"max_report_size"`
	RetryFor         time.Duration `toml:"retry_for"`

	// Receiving.
	RUAMailboxes    []string      `toml:"rua_mailboxes"`
	DiscardReceived bool          `toml:"discard_received"`
	MaxMessageSize  int64         `toml:"max_message_size"`
	MaxXMLSize      int64         `toml:"max_xml_size"`
	KeepReceived    time.Duration `toml:"keep_received"`

	RedisURL              string   `toml:"redis_url"`
	RedisSentinels        []string `toml:"redis_sentinels"`
	RedisMasterName       string   `toml:"redis_master_name"`
	RedisCluster          []string `toml:"redis_cluster"`
	RedisUsername         string   `toml:"redis_username"`
	RedisPassword         string   `toml:"redis_password"`
	RedisSentinelPassword string   `toml:"redis_sentinel_password"`
}

// Whitelist names the three MDaemon-style exception files.
type Whitelist struct {
	Reverse       string        `toml:"reverse"`
	HELO          string        `toml:"helo"`
	Mail          string        `toml:"mail"`
	CheckInterval time.Duration `toml:"check_interval"`
	Sync          Sync          `toml:"sync"`
}

// Sync downloads the whitelist files from a central server.
type Sync struct {
	ReverseURL string        `toml:"reverse_url"`
	HELOURL    string        `toml:"helo_url"`
	MailURL    string        `toml:"mail_url"`
	At         string        `toml:"at"`
	Interval   time.Duration `toml:"interval"`
	MaxSize    int64         `toml:"max_size"`
	Timeout    time.Duration `toml:"timeout"`
}

// Default returns the embedded defaults.
func Default() *Config {
	c, err := parse("(embedded defaults)", defaultTOML, nil)
	if err != nil {
		panic("embedded default.toml: " + err.Error())
	}
	return c
}

// Load reads path on top of the embedded defaults and validates the result.
// The error lists every problem found, each naming the file and key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := parse(path, data, Default())
	if err != nil {
		return nil, err
	}
	c.Path = path
	return c, c.Validate()
}

// LoadDefault is what serve does without -config: the file at DefaultPath
// when it exists, otherwise the embedded defaults.
func LoadDefault() (*Config, error) {
	if _, err := os.Stat(DefaultPath); err == nil {
		return Load(DefaultPath)
	}
	c := Default()
	return c, c.Validate()
}

func parse(name string, data []byte, base *Config) (*Config, error) {
	c := base
	if c == nil {
		c = &Config{}
	}
	if err := decodeTOML(name, data, c); err != nil {
		return nil, err
	}
	for _, ch := range []*Check{&c.Screen.PTR, &c.Screen.HELO, &c.Screen.Mail} {
		ch.Actions = ch.outcomes()
	}
	return c, nil
}

func (ch *Check) outcomes() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{
		"no_record": ch.NoRecord, "no_match": ch.NoMatch, "invalid": ch.Invalid,
		"not_found": ch.NotFound, "no_mx": ch.NoMX, "null_mx": ch.NullMX,
		"forged": ch.Forged, "temp_error": ch.TempError,
	} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}
