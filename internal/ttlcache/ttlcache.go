// Package ttlcache is the one cache vouch keeps answers in, for DNS
// (internal/resolver) and LDAP (signer): entries live for the TTL their
// lookup gives them, a size bound drops the least recently used entry
// first, and concurrent misses of one key share one lookup. A failed
// lookup is handed to every caller waiting for it but never kept, so the
// next caller asks again; a "not found" answer is a value like any other
// and is kept (negative caching). The shared lookup runs detached from any
// one caller's context, so a caller giving up early does not fail the
// others, and each caller still stops waiting at its own deadline.
package ttlcache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// Source says where Get's value came from.
type Source int

const (
	Filled Source = iota // this caller's lookup
	Hit                  // the cache
	Joined               // a concurrent identical lookup (collapsed)
)

// Fill looks a key up. It returns the value, how long it may be kept (0 or
// less: not kept) and an error (never kept).
type Fill[V any] func(ctx context.Context) (V, time.Duration, error)

// Cache is safe for concurrent use. The zero value is not usable: call New.
type Cache[K comparable, V any] struct {
	max int

	// Now is the clock; tests replace it before use.
	Now func() time.Time

	mu    sync.Mutex
	items map[K]*list.Element // of *entry[K, V]
	lru   *list.List          // front: most recently used
	calls map[K]*call[V]
}

type entry[K comparable, V any] struct {
	key     K
	val     V
	expires time.Time
}

type call[V any] struct {
	done   chan struct{}
	val    V
	err    error
	joined int // callers waiting besides the first (for tests)
}

// New makes a cache of at most max entries. With max 0 or less nothing is
// kept, but concurrent lookups are still collapsed.
func New[K comparable, V any](max int) *Cache[K, V] {
	return &Cache[K, V]{max: max, Now: time.Now, items: map[K]*list.Element{}, lru: list.New(), calls: map[K]*call[V]{}}
}

// Get returns the value of key: from the cache, by joining a lookup of key
// in flight, or by calling fill. When ctx ends first it returns ctx.Err()
// and the lookup goes on for the others (and the cache). A panic in fill
// is returned as an error to every caller: it must not take the process
// down with it.
func (c *Cache[K, V]) Get(ctx context.Context, key K, fill Fill[V]) (V, Source, error) {
	c.mu.Lock()
	if v, ok := c.hitLocked(key); ok {
		c.mu.Unlock()
		return v, Hit, nil
	}
	cl, joined := c.calls[key]
	if joined {
		cl.joined++
	} else {
		cl = &call[V]{done: make(chan struct{})}
		c.calls[key] = cl
		go c.run(context.WithoutCancel(ctx), key, cl, fill)
	}
	c.mu.Unlock()

	src := Filled
	if joined {
		src = Joined
	}
	select {
	case <-cl.done:
		return cl.val, src, cl.err
	case <-ctx.Done():
		var zero V
		return zero, src, ctx.Err()
	}
}

// Peek returns the cached value of key, if it has one that has not
// expired; it never starts a lookup. A caller whose fill function costs an
// allocation (a closure) asks Peek first, so that a hit costs none.
func (c *Cache[K, V]) Peek(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hitLocked(key)
}

// hitLocked is the cache hit of Get and Peek; it drops an expired entry.
func (c *Cache[K, V]) hitLocked(key K) (V, bool) {
	if el, ok := c.items[key]; ok {
		e := el.Value.(*entry[K, V])
		if c.Now().Before(e.expires) {
			c.lru.MoveToFront(el)
			return e.val, true
		}
		c.lru.Remove(el)
		delete(c.items, key)
	}
	var zero V
	return zero, false
}

func (c *Cache[K, V]) run(ctx context.Context, key K, cl *call[V], fill Fill[V]) {
	var ttl time.Duration
	defer func() {
		if p := recover(); p != nil {
			cl.err = fmt.Errorf("lookup panicked: %v", p)
		}
		c.mu.Lock()
		delete(c.calls, key)
		if cl.err == nil {
			c.put(key, cl.val, ttl)
		}
		c.mu.Unlock()
		close(cl.done)
	}()
	cl.val, ttl, cl.err = fill(ctx)
}

// put keeps val for ttl; c.mu is held.
func (c *Cache[K, V]) put(key K, val V, ttl time.Duration) {
	if c.max <= 0 || ttl <= 0 {
		return
	}
	if el, ok := c.items[key]; ok {
		c.lru.Remove(el)
	}
	c.items[key] = c.lru.PushFront(&entry[K, V]{key: key, val: val, expires: c.Now().Add(ttl)})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*entry[K, V]).key)
	}
}

// Len is the number of entries held, expired ones included.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
