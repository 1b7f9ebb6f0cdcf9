// Package redisconn builds the Redis client that vouch's shared stores
// use ([hijack] and [dmarc_reports]), so both take the same options the
// same way.
package redisconn

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Options say which Redis to use: URL (one server), or Sentinels with
// MasterName, or Cluster; the passwords go with the latter two (a URL
// carries its own).
type Options struct {
	URL              string
	Sentinels        []string
	MasterName       string
	Cluster          []string
	Username         string
	Password         string
	SentinelPassword string
	// Timeout bounds dialling, each read and each write (default 1s);
	// parameters in URL (dial_timeout=...) win.
	Timeout time.Duration
}

// DefaultTimeout is Options.Timeout when it is 0.
const DefaultTimeout = time.Second

// New returns the client for o: a *redis.Client for URL, a failover
// client for Sentinels, a *redis.ClusterClient for Cluster. It does not
// connect yet.
func New(o Options) (redis.UniversalClient, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	u := &redis.UniversalOptions{
		Username: o.Username, Password: o.Password, SentinelPassword: o.SentinelPassword,
		// Callers wait for Redis in a mail transaction: fail fast, then
		// fail open or closed, rather than hold the SMTP session.
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, MaxRetries: 1,
		ContextTimeoutEnabled: true,
		// No CLIENT SETINFO / MAINT_NOTIFICATIONS handshakes: plain Redis
		// (and older servers) answer them with errors go-redis would log.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	switch {
	case len(o.Cluster) > 0:
		u.Addrs, u.IsClusterMode = o.Cluster, true
	case len(o.Sentinels) > 0:
		u.Addrs, u.MasterName = o.Sentinels, o.MasterName
	default:
		opts, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("redis_url: %w", err)
		}
		// URL parameters (dial_timeout=...) win over the defaults above.
		if opts.DialTimeout == 0 {
			opts.DialTimeout = u.DialTimeout
		}
		if opts.ReadTimeout == 0 {
			opts.ReadTimeout = u.ReadTimeout
		}
		if opts.WriteTimeout == 0 {
			opts.WriteTimeout = u.WriteTimeout
		}
		if opts.MaxRetries == 0 {
			opts.MaxRetries = u.MaxRetries
		}
		opts.ContextTimeoutEnabled, opts.DisableIdentity = true, true
		opts.MaintNotificationsConfig = u.MaintNotificationsConfig
		return redis.NewClient(opts), nil
	}
	return redis.NewUniversalClient(u), nil
}
