package resolver

import (
	"sync"
	"time"
)

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	answer  *Answer
	expires time.Time
}

// cache is a TTL-bounded map with a size bound. When it is full, expired
// entries go first, then arbitrary ones (map order): a busy MX keeps the
// names it sees often because they come back in soon.
type cache struct {
	mu      sync.Mutex
	max     int
	entries map[cacheKey]cacheEntry
	now     func() time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, entries: make(map[cacheKey]cacheEntry), now: time.Now}
}

func (c *cache) get(k cacheKey) *Answer {
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, k)
		return nil
	}
	return e.answer
}

func (c *cache) put(k cacheKey, a *Answer) {
	if c.max <= 0 || a.TTL <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[k] = cacheEntry{answer: a, expires: now.Add(a.TTL)}
}

// evict makes room for at least one entry; it drops expired entries and, if
// that is not enough, about a tenth of the cache.
func (c *cache) evict(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	drop := len(c.entries) - c.max + 1 + c.max/10
	for k := range c.entries {
		if drop <= 0 {
			break
		}
		delete(c.entries, k)
		drop--
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
