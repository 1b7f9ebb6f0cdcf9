package signer

import (
	"container/list"
	"sync"
	"time"
)

// DefaultLDAPCacheSize bounds the LDAP answer cache (entries, positive and
// negative together); the least recently used entry goes first.
const DefaultLDAPCacheSize = 10000

// ldapCache keeps LDAP answers, found and not found alike, for ttl. Errors
// are never kept: the next message asks again. Concurrent misses of one key
// share one query. A nil cache or a ttl of 0 keeps nothing.
type ldapCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	items map[string]*list.Element
	lru   *list.List // front: most recently used
	calls map[string]*ldapCall
}

type cacheItem struct {
	key     string
	val     any
	expires time.Time
}

type ldapCall struct {
	done chan struct{}
	val  any
	err  error
}

func newLDAPCache(ttl time.Duration, max int) *ldapCache {
	if ttl <= 0 {
		return nil
	}
	if max <= 0 {
		max = DefaultLDAPCacheSize
	}
	return &ldapCache{ttl: ttl, max: max, now: time.Now, items: map[string]*list.Element{}, lru: list.New(), calls: map[string]*ldapCall{}}
}

// get returns the cached value of key, or calls fill, keeps what it
// returns (unless it fails) and returns it.
func (c *ldapCache) get(key string, fill func() (any, error)) (any, error) {
	if c == nil {
		return fill()
	}
	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		it := el.Value.(*cacheItem)
		if c.now().Before(it.expires) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return it.val, nil
		}
		c.lru.Remove(el)
		delete(c.items, key)
	}
	if call, ok := c.calls[key]; ok {
		c.mu.Unlock()
		<-call.done
		return call.val, call.err
	}
	call := &ldapCall{done: make(chan struct{})}
	c.calls[key] = call
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		delete(c.calls, key)
		if call.err == nil {
			c.items[key] = c.lru.PushFront(&cacheItem{key: key, val: call.val, expires: c.now().Add(c.ttl)})
			for c.lru.Len() > c.max {
				old := c.lru.Back()
				c.lru.Remove(old)
				delete(c.items, old.Value.(*cacheItem).key)
			}
		}
		c.mu.Unlock()
		close(call.done)
	}()
	call.err = errCacheFillPanicked // replaced unless fill panics
	call.val, call.err = fill()
	return call.val, call.err
}

// len is the number of entries held, expired ones included.
func (c *ldapCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

type cacheError string

func (e cacheError) Error() string { return string(e) }

const errCacheFillPanicked = cacheError("LDAP lookup failed")
