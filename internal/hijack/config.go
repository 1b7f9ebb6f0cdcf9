package hijack

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"vouch/internal/redisconn"
)

// Actions taken when an account goes over a limit.
const (
	// ActionTempfail refuses MAIL FROM with 452 4.7.1 while the sliding
	// window is full; the account sends again as soon as old messages fall
	// out of the window.
	ActionTempfail = "tempfail"
	// ActionFreeze freezes the account: every later message is refused
	// with 550 5.7.1 (450 4.7.1 in trial mode) until an admin releases it,
	// and the postmaster gets one notification.
	ActionFreeze = "freeze"
)

// Backends that hold the counters and the freeze list.
const (
	// BackendMemory counts in this process; freezes are persisted in
	// StateFile.
	BackendMemory = "memory"
	// BackendRedis counts in Redis, shared by every vouch instance that
	// uses the same server; freezes live in Redis too.
	BackendRedis = "redis"
)

// Config is the [hijack] section. The TOML keys are in the field comments;
// their defaults are in the embedded default.toml, the only place they are
// written (the daemon fills this from the config), so a zero value here
// means zero, and Validate refuses the ones that make no sense.
type Config struct {
	Enabled       bool          // enabled
	Messages      int           // messages: accepted messages per window; the next one is over the limit
	Recipients    int           // recipients: recipients of accepted messages per window
	Window        time.Duration // window: length of the sliding window
	Action        string        // action: "tempfail" or "freeze"
	ExemptFile    string        // exempt_file: logins never limited (whitelist grammar, see exempt.go)
	Postmaster    string        // postmaster: who gets the freeze notification; "" sends none
	NotifySMTP    string        // notify_smtp: host:port of the local MTA, plain SMTP, no AUTH
	NotifyFrom    string        // notify_from: envelope and header sender of the notification
	StateFile     string        // state_file: the freeze list of the memory backend (JSON); unused with redis
	AdminSocket   string        // admin_socket: unix socket for `vouch accounts`; "" serves none
	Backend       string        // backend: "memory" or "redis"
	RedisURL      string        // redis_url: redis://[user:password@]host:port/db (or rediss://, unix://)
	RedisFailOpen bool          // redis_fail_open: Redis unreachable: count locally (true) or tempfail 451 4.3.0 (false)

	RedisSentinels        []string // redis_sentinels: host:port of the Sentinels (instead of redis_url)
	RedisMasterName       string   // redis_master_name: the master the Sentinels watch
	RedisCluster          []string // redis_cluster: host:port of Cluster nodes (instead of redis_url)
	RedisUsername         string   // redis_username: ACL user for Sentinel/Cluster nodes (redis_url has its own)
	RedisPassword         string   // redis_password: likewise
	RedisSentinelPassword string   // redis_sentinel_password: password of the Sentinels themselves
	Trial                 bool     // trial: freeze replies are 450 4.7.1 instead of 550 5.7.1

	ReleaseAddress  string        // release_address: Reply-To of the freeze notification (LOCAL+TOKEN@DOMAIN); "" turns release by reply off
	ReleaseTokenTTL time.Duration // release_token_ttl: how long a release token works
	ReleaseKeyFile  string        // release_key_file: HMAC key of the release tokens, made (0600) if missing

	// Now is the clock; nil means time.Now. Tests set it; not in TOML.
	Now func() time.Time
}

// Validate reports every problem of the section at once, each naming its
// key (hijack.KEY). A disabled section is not checked.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	bad := func(key, format string, v ...any) {
		errs = append(errs, fmt.Errorf("hijack.%s: %s", key, fmt.Sprintf(format, v...)))
	}
	if c.Messages < 1 {
		bad("messages", "must be positive, not %d", c.Messages)
	}
	if c.Recipients < 1 {
		bad("recipients", "must be positive, not %d", c.Recipients)
	}
	if c.Window < time.Second {
		bad("window", "must be at least 1s, not %s", c.Window)
	}
	if c.Action != ActionTempfail && c.Action != ActionFreeze {
		bad("action", "unknown action %q (tempfail or freeze)", c.Action)
	}
	if c.Postmaster != "" && !plainAddress(c.Postmaster) {
		bad("postmaster", "%q is not a plain mail address", c.Postmaster)
	}
	if !plainAddress(c.NotifyFrom) {
		bad("notify_from", "%q is not a plain mail address", c.NotifyFrom)
	}
	if _, _, err := net.SplitHostPort(c.NotifySMTP); err != nil {
		bad("notify_smtp", "%q is not host:port", c.NotifySMTP)
	}
	if c.ReleaseAddress != "" {
		local, _, _ := strings.Cut(c.ReleaseAddress, "@")
		switch {
		case !plainAddress(c.ReleaseAddress) || !strings.Contains(c.ReleaseAddress, "@") || strings.Contains(local, "+"):
			bad("release_address", "%q is not a plain local@domain address without +", c.ReleaseAddress)
		case len(local)+1+tokenChars > 64:
			bad("release_address", "local part %q too long: with +TOKEN it passes 64 characters", local)
		}
		if c.Postmaster == "" {
			bad("release_address", "needs postmaster (the only sender whose reply releases)")
		}
		if c.ReleaseTokenTTL <= 0 {
			bad("release_token_ttl", "must be positive, not %s", c.ReleaseTokenTTL)
		}
		if c.ReleaseKeyFile == "" {
			bad("release_key_file", "required with release_address")
		}
	}
	switch c.Backend {
	case BackendMemory:
		if c.StateFile == "" && c.Action == ActionFreeze {
			bad("state_file", "required with action = \"freeze\" and backend = \"memory\" (freezes must survive a restart)")
		}
	case BackendRedis:
		switch {
		case len(c.RedisSentinels) > 0 && len(c.RedisCluster) > 0:
			bad("redis_cluster", "use either redis_sentinels or redis_cluster")
		case len(c.RedisSentinels) > 0 && c.RedisMasterName == "":
			bad("redis_master_name", "required with redis_sentinels")
		case len(c.RedisSentinels) > 0 || len(c.RedisCluster) > 0:
			for _, a := range append(slices.Clone(c.RedisSentinels), c.RedisCluster...) {
				if _, _, err := net.SplitHostPort(a); err != nil {
					bad("redis_sentinels/redis_cluster", "%q is not host:port", a)
				}
			}
		case c.RedisURL == "":
			bad("redis_url", "required with backend = \"redis\"")
		default:
			if _, err := redis.ParseURL(c.RedisURL); err != nil {
				bad("redis_url", "%v", err)
			}
		}
	default:
		bad("backend", "unknown backend %q (memory or redis)", c.Backend)
	}
	return errors.Join(errs...)
}

func (c Config) redisOptions() redisconn.Options {
	return redisconn.Options{URL: c.RedisURL, Sentinels: c.RedisSentinels, MasterName: c.RedisMasterName, Cluster: c.RedisCluster,
		Username: c.RedisUsername, Password: c.RedisPassword, SentinelPassword: c.RedisSentinelPassword}
}

// plainAddress accepts what can go in MAIL FROM / RCPT TO without quoting:
// local@domain, or a bare "postmaster" (RFC 5321 §4.5.1: every host
// accepts it).
func plainAddress(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n<>()[],;:\"\\") {
		return false
	}
	if strings.EqualFold(s, "postmaster") {
		return true
	}
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.Contains(domain, "@")
}
