package dmarcreport

import (
	"fmt"
	"time"

	"vouch/internal/redisconn"
)

// StoreOptions say which store to open. The daemon fills them from
// [dmarc_reports] (internal/daemon/settings.go): store → Kind, path →
// Path, redis_* → Redis.
type StoreOptions struct {
	// Kind is "memory" (lost at exit: tests), "bolt" (one MTA) or
	// "redis" (a fleet).
	Kind string
	// Path is the bolt file. Its directory must exist; the file is
	// created (0600) by the first Add, AddReceived or AddMalformed, and
	// only by them, so run the daemon first.
	Path string
	// LockTimeout is how long a bolt operation waits for another
	// process's transaction on the file (default DefaultLockTimeout).
	LockTimeout time.Duration
	// Redis is the server, as for [hijack]; Redis.Timeout defaults to
	// DefaultRedisTimeout (a report can be megabytes).
	Redis redisconn.Options
	// MaxMalformed and MaxMalformedRaw bound the malformed messages kept
	// (default DefaultMaxMalformed, DefaultMaxMalformedRaw).
	MaxMalformed    int
	MaxMalformedRaw int
}

// DefaultRedisTimeout is the Redis store's dial, read and write timeout
// unless StoreOptions.Redis.Timeout says otherwise.
const DefaultRedisTimeout = 5 * time.Second

// OpenStore opens the configured store. It does not connect to Redis or
// touch the bolt file yet: each operation does, and reports its errors.
func OpenStore(o StoreOptions) (Store, error) {
	limits := malformedLimits{max: o.MaxMalformed, raw: o.MaxMalformedRaw}.orDefaults()
	switch o.Kind {
	case "memory":
		m := NewMemoryStore()
		m.limits = limits
		return m, nil
	case "bolt":
		return newBoltStore(o.Path, o.LockTimeout, limits)
	case "redis":
		ro := o.Redis
		if ro.Timeout <= 0 {
			ro.Timeout = DefaultRedisTimeout
		}
		c, err := redisconn.New(ro)
		if err != nil {
			return nil, fmt.Errorf("dmarc_reports.%w", err)
		}
		return &redisStore{c: c, limits: limits}, nil
	}
	return nil, fmt.Errorf("dmarc_reports.store: unknown store %q (bolt or redis)", o.Kind)
}
