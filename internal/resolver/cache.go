package resolver

import (
	"vouch/internal/ttlcache"
)

// cacheKey is what an answer is kept under: the absolute lower-case name
// and the query type. Answers (found, NXDOMAIN and NODATA alike) are kept
// for their TTL (Answer.TTL); temporary failures are not kept, and
// concurrent identical lookups share one query (internal/ttlcache).
type cacheKey struct {
	name  string
	qtype uint16
}

type cache = ttlcache.Cache[cacheKey, *Answer]

func newCache(max int) *cache { return ttlcache.New[cacheKey, *Answer](max) }
