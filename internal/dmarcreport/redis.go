package dmarcreport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisStore keeps everything in Redis, shared by a fleet of MTAs: each
// records its rows, and Claim makes one of them send each period's report.
//
// Keys (M, a period's member, is "DAY:DOMAIN"):
//
//	vouch:dmarc:{out}:periods    sorted set: M, score = end of DAY (Unix s)
//	vouch:dmarc:{out}:rows:M     hash: RecordKey → count
//	vouch:dmarc:{out}:meta:M     JSON periodMeta (policy and rua= of the period)
//	vouch:dmarc:{out}:claim:M    the holder, SET NX PX ttl
//	vouch:dmarc:received         sorted set: report ID, score = date-range end
//	vouch:dmarc:received:H       JSON Received, H = hex sha256 of the ID
//	vouch:dmarc:malformed        sorted set: JSON Malformed, score = ms received
//
// The outgoing keys share the hash tag {out}: on a Cluster they are in one
// slot, so one script adds a whole batch (rows, policy and the period
// index) and Done subtracts, drops emptied rows and unlists an emptied
// period atomically (a claim expires by itself); a batch is never half added, and no row is left in an
// unlisted period. One slot is plenty: the recorder writes a few batches a
// second. A received report (up to max_xml_size) has a key of its own, so
// they spread over the Cluster; the index is written first and readers
// skip an ID without data, so a failure between the two writes leaves
// nothing a retry does not fix.
type redisStore struct {
	c      redis.UniversalClient
	limits malformedLimits
}

const (
	redisOut           = "vouch:dmarc:{out}:"
	redisPeriods       = redisOut + "periods"
	redisReceived      = "vouch:dmarc:received"
	redisMalformed     = "vouch:dmarc:malformed"
	redisReceivedItem  = redisReceived + ":"
	redisRowsPrefix    = redisOut + "rows:"
	redisMetaPrefix    = redisOut + "meta:"
	redisClaimPrefix   = redisOut + "claim:"
	redisPeriodDaySize = len(DayFormat)
)

func periodMember(p Period) string { return p.Day + ":" + p.Domain }

func periodOfMember(m string) Period {
	if len(m) <= redisPeriodDaySize {
		return Period{Day: m}
	}
	return Period{Day: m[:redisPeriodDaySize], Domain: m[redisPeriodDaySize+1:]}
}

func receivedKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return redisReceivedItem + hex.EncodeToString(h[:])
}

// addScript: KEYS[1] the period index, then rows and meta of each period;
// ARGV per period: member, score, meta JSON, n, then n RecordKey, count
// pairs.
var addScript = redis.NewScript(`
local a = 1
for i = 1, (#KEYS - 1) / 2 do
  local member, score, meta, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  a = a + 4
  for j = 1, n do
    redis.call('HINCRBY', KEYS[2 * i], ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  redis.call('SET', KEYS[2 * i + 1], meta)
  redis.call('ZADD', KEYS[1], score, member)
end
return 1
`)

// doneScript: KEYS[1] the period index, KEYS[2] rows, KEYS[3] meta;
// ARGV[1] the member, then RecordKey, count pairs.
var doneScript = redis.NewScript(`
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 and
     redis.call('HINCRBY', KEYS[2], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
`)

func (s *redisStore) Add(ctx context.Context, evs []Evaluation) error {
	batch := batchByPeriod(evs)
	if len(batch) == 0 {
		return nil
	}
	keys := []string{redisPeriods}
	var args []any
	for _, b := range batch {
		meta, err := json.Marshal(b.meta)
		if err != nil {
			return err
		}
		m := periodMember(b.Period)
		keys = append(keys, redisRowsPrefix+m, redisMetaPrefix+m)
		args = append(args, m, dayEnd(b.Day).Unix(), meta, len(b.keys))
		for _, k := range b.keys {
			args = append(args, k, b.counts[k])
		}
	}
	return s.wrap(addScript.Run(ctx, s.c, keys, args...).Err())
}

func (s *redisStore) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("dmarc report store (redis): %w", err)
}

func (s *redisStore) Unreported(ctx context.Context, before time.Time) ([]Aggregate, error) {
	members, err := s.c.ZRangeByScore(ctx, redisPeriods, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(before.Unix(), 10)}).Result()
	if err != nil {
		return nil, s.wrap(err)
	}
	rows := make([]*redis.MapStringStringCmd, len(members))
	metas := make([]*redis.StringCmd, len(members))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			rows[i] = p.HGetAll(ctx, redisRowsPrefix+m)
			metas[i] = p.Get(ctx, redisMetaPrefix+m)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.wrap(err)
	}
	var out []Aggregate
	for i, m := range members {
		a := Aggregate{Period: periodOfMember(m)}
		if js, err := metas[i].Result(); err == nil {
			var meta periodMeta
			if err := json.Unmarshal([]byte(js), &meta); err != nil {
				return nil, s.wrap(fmt.Errorf("period %s: %w", m, err))
			}
			a.Policy, a.RUA = meta.Policy, meta.RUA
		}
		for k, v := range rows[i].Val() {
			var r Record
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				err = json.Unmarshal([]byte(k), &r)
			}
			if err != nil {
				return nil, s.wrap(fmt.Errorf("period %s: row %q: %w", m, k, err))
			}
			r.Row.Count = n
			a.Records = append(a.Records, r)
		}
		if len(a.Records) > 0 {
			sortRecords(a.Records)
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *redisStore) Claim(ctx context.Context, p Period, holder string, ttl time.Duration) (bool, error) {
	ok, err := s.c.SetNX(ctx, redisClaimPrefix+periodMember(p), holder, ttl).Result()
	return ok, s.wrap(err)
}

func (s *redisStore) Done(ctx context.Context, a Aggregate) error {
	m := periodMember(a.Period)
	args := []any{m}
	for _, r := range a.Records {
		args = append(args, RecordKey(r), r.Row.Count)
	}
	keys := []string{redisPeriods, redisRowsPrefix + m, redisMetaPrefix + m}
	return s.wrap(doneScript.Run(ctx, s.c, keys, args...).Err())
}

func (s *redisStore) AddReceived(ctx context.Context, r Received) (bool, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	// The index first: see redisStore.
	err = s.c.ZAddNX(ctx, redisReceived, redis.Z{Score: float64(r.Feedback.Metadata.DateRange.End), Member: r.ID}).Err()
	if err != nil {
		return false, s.wrap(err)
	}
	set, err := s.c.SetNX(ctx, receivedKey(r.ID), js, 0).Result()
	return !set && err == nil, s.wrap(err)
}

func (s *redisStore) ListReceived(ctx context.Context, domain string, since time.Time) ([]Received, error) {
	ids, err := s.c.ZRangeByScore(ctx, redisReceived, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(since.Unix(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, s.wrap(err)
	}
	gets := make([]*redis.StringCmd, len(ids))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = p.Get(ctx, receivedKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.wrap(err)
	}
	var out []Received
	for i, g := range gets {
		js, err := g.Result()
		if errors.Is(err, redis.Nil) {
			continue // being added, or pruned
		}
		var r Received
		if err == nil {
			err = json.Unmarshal([]byte(js), &r)
		}
		if err != nil {
			return nil, s.wrap(fmt.Errorf("received report %q: %w", ids[i], err))
		}
		if domain == "" || strings.EqualFold(r.Feedback.Policy.Domain, domain) {
			out = append(out, r)
		}
	}
	sortReceived(out)
	return out, nil
}

// A malformed message is a member of a sorted set by the time it was
// received, not an entry of a list: Prune and ListMalformed then cut by
// time exactly, and trimming to the limit is ZREMRANGEBYRANK.
func (s *redisStore) AddMalformed(ctx context.Context, m Malformed) error {
	js, err := json.Marshal(s.limits.cut(m))
	if err != nil {
		return err
	}
	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, redisMalformed, redis.Z{Score: float64(m.ReceivedAt.UnixMilli()), Member: js})
		p.ZRemRangeByRank(ctx, redisMalformed, 0, int64(-s.limits.max-1))
		return nil
	})
	return s.wrap(err)
}

func (s *redisStore) ListMalformed(ctx context.Context, since time.Time) ([]Malformed, error) {
	list, err := s.c.ZRangeByScore(ctx, redisMalformed, &redis.ZRangeBy{Min: strconv.FormatInt(since.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, s.wrap(err)
	}
	var out []Malformed
	for _, js := range list {
		var m Malformed
		if err := json.Unmarshal([]byte(js), &m); err != nil {
			return nil, s.wrap(fmt.Errorf("malformed message: %w", err))
		}
		if m.ReceivedAt.After(since) { // the score has ms only
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *redisStore) Prune(ctx context.Context, before time.Time) error {
	ids, err := s.c.ZRangeByScore(ctx, redisReceived, &redis.ZRangeBy{Min: "-inf", Max: "(" + strconv.FormatInt(before.Unix(), 10)}).Result()
	if err != nil {
		return s.wrap(err)
	}
	// The data before the index entry: see redisStore. One DEL per key,
	// as the keys of a Cluster are in different slots.
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Del(ctx, receivedKey(id))
		}
		return nil
	})
	if err == nil && len(ids) > 0 {
		members := make([]any, len(ids))
		for i, id := range ids {
			members[i] = id
		}
		err = s.c.ZRem(ctx, redisReceived, members...).Err()
	}
	if err == nil {
		err = s.c.ZRemRangeByScore(ctx, redisMalformed, "-inf", "("+strconv.FormatInt(before.UnixMilli(), 10)).Err()
	}
	return s.wrap(err)
}

func (s *redisStore) Close() error { return s.c.Close() }

var _ Store = (*redisStore)(nil)
