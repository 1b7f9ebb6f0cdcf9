package signer

import (
	"context"
	"time"

	"vouch/internal/ttlcache"
)

// DefaultLDAPCacheSize bounds the LDAP answer cache (entries, positive and
// negative together); the least recently used entry goes first.
const DefaultLDAPCacheSize = 10000

// ldapCache keeps LDAP answers, found and not found alike, for ttl. Errors
// are never kept: the next message asks again. Concurrent misses of one key
// share one query (internal/ttlcache). A nil cache (a ttl of 0) keeps
// nothing.
type ldapCache struct {
	ttl time.Duration
	c   *ttlcache.Cache[string, any]
}

func newLDAPCache(ttl time.Duration, max int) *ldapCache {
	if ttl <= 0 {
		return nil
	}
	if max <= 0 {
		max = DefaultLDAPCacheSize
	}
	return &ldapCache{ttl: ttl, c: ttlcache.New[string, any](max)}
}

// get returns the cached value of key, or calls fill, keeps what it
// returns (unless it fails) and returns it. LDAP searches carry their own
// time limit, so the wait has no deadline here.
func (c *ldapCache) get(key string, fill func() (any, error)) (any, error) {
	if c == nil {
		return fill()
	}
	v, _, err := c.c.Get(context.Background(), key, func(context.Context) (any, time.Duration, error) {
		v, err := fill()
		return v, c.ttl, err
	})
	return v, err
}

// len is the number of entries held, expired ones included.
func (c *ldapCache) len() int {
	if c == nil {
		return 0
	}
	return c.c.Len()
}
