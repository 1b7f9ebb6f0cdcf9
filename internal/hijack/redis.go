package hijack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"vouch/internal/redisconn"
)

// redisStore keeps the counters and the freeze list in Redis, shared by
// every vouch instance configured with the same server and database.
//
// The window is a sliding log, one sorted set per login
// (vouch:hijack:w:LOGIN): score = acceptance time in ms, member =
// "MS:RCPTS:IP:ID" (ID unique per instance and message). A Lua script
// prunes, adds and sums in one atomic step. Why a log and not INCR+EXPIRE
// buckets: buckets give a fixed or approximate window (a burst straddling
// two buckets gets up to twice the limit, or the count is interpolated),
// while the limit here is small (hundreds of entries per login at most, as
// MAIL FROM is refused at the limit) so the exact log costs a few KiB per
// active login and gives the same answer as the memory backend, the oldest
// entry (when sending is possible again) and the client IPs for the
// notification for free. A retried ZADD of the same member is idempotent,
// so a network retry cannot count a message twice.
//
// Scores come from each instance's clock: instances must keep time (NTP);
// a skew of s shifts when one instance's messages leave the window by s.
//
// Every key of one login carries the hash tag {LOGIN}
// (vouch:hijack:{LOGIN}:w, :r, :f, :n), so on a Redis Cluster all of them
// live in one slot and each Lua script touches one slot only. The freeze
// is the string vouch:hijack:{LOGIN}:f (JSON Freeze), set with SET NX so
// the first freeze wins; the freeze list is a SCAN for
// vouch:hijack:*:f, run on every master of a Cluster. Why not one hash of
// all freezes, as before: on a Cluster a script could not touch it and a
// login's window at once, and the per-login key needs no second write to
// stay consistent. The freeze list is read by `vouch accounts list` and
// release replies only, so a SCAN is cheap enough. The notification is
// claimed with SET vouch:hijack:{LOGIN}:n NX: exactly one instance mails
// per freeze, including a freeze that an instance made alone during a
// Redis outage and writes back later (it mailed already, and takes the
// claim so that nobody mails again). A release deletes all four.
//
// The client is go-redis's UniversalClient: one server (redis_url),
// Sentinel (redis_sentinels, redis_master_name) or Cluster
// (redis_cluster).
type redisStore struct {
	c      redis.UniversalClient
	window time.Duration
	id     string // instance id, part of every member
	seq    atomic.Uint64
	node   atomic.Value // string: address of the node last connected to
}

const redisPrefix = "vouch:hijack:"

// loginKey is login's key of the given kind, with login as hash tag.
func loginKey(login, kind string) string { return redisPrefix + "{" + login + "}:" + kind }

func winKey(login string) string      { return loginKey(login, "w") }
func sampleKey(login string) string   { return loginKey(login, "r") }
func notifiedKey(login string) string { return loginKey(login, "n") }
func freezeKey(login string) string   { return loginKey(login, "f") }

// legacyFrozenKey is the hash of all freezes of vouch before the
// per-login keys; New moves its entries (see migrate).
const legacyFrozenKey = redisPrefix + "frozen"

// loginOfKey returns the login of a key made by loginKey with kind.
func loginOfKey(key, kind string) string {
	s := strings.TrimPrefix(key, redisPrefix+"{")
	return strings.TrimSuffix(s, "}:"+kind)
}

// sumLua sums the recipients of the members of KEYS[1] (after pruning)
// and finds the oldest score.
const sumLua = `
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local rcpts, oldest = 0, 0
for i = 1, #members, 2 do
  local n = string.match(members[i], '^%d+:(%d+):')
  rcpts = rcpts + (tonumber(n) or 0)
  if i == 1 then oldest = tonumber(members[i + 1]) end
end
`

// checkScript: KEYS[1] window, KEYS[2] freeze; ARGV[1] now (ms),
// ARGV[2] window (ms). Returns {messages, recipients, oldest ms, freeze
// JSON or nil}.
var checkScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
` + sumLua + `
return {#members / 2, rcpts, oldest, redis.call('GET', KEYS[2])}
`)

// addScript: KEYS[1] window, KEYS[2] recipient sample; ARGV[1] now (ms),
// ARGV[2] window (ms), ARGV[3] member, ARGV[4..] recipients for the
// sample (distinct, most recent last). Returns {messages, recipients, oldest ms}.
var addScript = redis.NewScript(`
local now, win = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], win)
if #ARGV > 3 then
  for i = 4, #ARGV do
    redis.call('LREM', KEYS[2], 0, ARGV[i])
    redis.call('RPUSH', KEYS[2], ARGV[i])
  end
  redis.call('LTRIM', KEYS[2], -` + strconv.Itoa(sampleSize) + `, -1)
  redis.call('PEXPIRE', KEYS[2], win)
end
` + sumLua + `
return {#members / 2, rcpts, oldest}
`)

// freezeScript: KEYS[1] freeze, KEYS[2] notification claim; ARGV[1]
// freeze JSON, ARGV[2] "1" to take the claim. Returns {freeze JSON in
// force, 1 if the claim was taken}.
var freezeScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local claimed = 0
if ARGV[2] == '1' and redis.call('SET', KEYS[2], '1', 'NX') then claimed = 1 end
return {redis.call('GET', KEYS[1]), claimed}
`)

// backfillScript adds messages counted while Redis was unreachable with
// their own acceptance times: KEYS[1] window; ARGV[1] now (ms), ARGV[2]
// window (ms), ARGV[3..] score, member pairs. ZADD of a member already
// there changes nothing, so a retry cannot count twice.
var backfillScript = redis.NewScript(`
local now, win = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)
redis.call('PEXPIRE', KEYS[1], win)
return redis.call('ZCARD', KEYS[1])
`)

func newRedisStore(o redisconn.Options, window time.Duration, id string) (*redisStore, error) {
	c, err := redisconn.New(o)
	if err != nil {
		return nil, fmt.Errorf("hijack.%w", err)
	}
	r := &redisStore{c: c, window: window, id: id}
	if cc, ok := c.(*redis.ClusterClient); ok {
		cc.OnNewNode(func(n *redis.Client) { n.AddHook(nodeHook{r}) })
	} else {
		c.AddHook(nodeHook{r})
	}
	return r, nil
}

// nodeHook records the address of the node each new connection goes to:
// with Sentinel, the master of the moment.
type nodeHook struct{ r *redisStore }

func (h nodeHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err == nil {
			// The remote address: a failover client dials a placeholder
			// name that it resolves through the Sentinels.
			h.r.node.Store(c.RemoteAddr().String())
		}
		return c, err
	}
}
func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// describe names the Redis that answers: the node of the last connection,
// or every master of a Cluster.
func (r *redisStore) describe(ctx context.Context) string {
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var addrs []string
		cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu.Lock()
			addrs = append(addrs, n.Options().Addr)
			mu.Unlock()
			return nil
		})
		sort.Strings(addrs)
		return "redis cluster, masters " + strings.Join(addrs, " ")
	}
	node, _ := r.node.Load().(string)
	return "redis " + node
}

// forEachNode runs fn on the one server, or on every master of a Cluster.
func (r *redisStore) forEachNode(ctx context.Context, fn func(ctx context.Context, c redis.UniversalClient) error) error {
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return fn(ctx, n) })
	}
	return fn(ctx, r.c)
}

// scanLogins returns the logins that have a key of kind.
func (r *redisStore) scanLogins(ctx context.Context, kind string) ([]string, error) {
	var mu sync.Mutex
	var logins []string
	err := r.forEachNode(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, redisPrefix+"{*}:"+kind, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			logins = append(logins, loginOfKey(iter.Val(), kind))
			mu.Unlock()
		}
		return iter.Err()
	})
	sort.Strings(logins)
	return slices.Compact(logins), err
}

// migrate moves the freezes of the old all-in-one hash to per-login keys,
// so that an upgrade releases no frozen account.
func (r *redisStore) migrate(ctx context.Context) (int, error) {
	if _, ok := r.c.(*redis.ClusterClient); ok {
		return 0, nil // the old layout never ran on a Cluster
	}
	all, err := r.c.HGetAll(ctx, legacyFrozenKey).Result()
	if err != nil || len(all) == 0 {
		return 0, err
	}
	for login, js := range all {
		if err := r.c.SetNX(ctx, freezeKey(login), js, 0).Err(); err != nil {
			return 0, err
		}
		r.c.SetNX(ctx, notifiedKey(login), "1", 0) // it was mailed then
	}
	return len(all), r.c.Del(ctx, legacyFrozenKey).Err()
}

func (r *redisStore) close() error { return r.c.Close() }

func (r *redisStore) ping(ctx context.Context) error { return r.c.Ping(ctx).Err() }

func (r *redisStore) check(ctx context.Context, login string, now time.Time) (Counts, *Freeze, error) {
	res, err := checkScript.Run(ctx, r.c, []string{winKey(login), freezeKey(login)}, now.UnixMilli(), r.window.Milliseconds()).Slice()
	if err != nil {
		return Counts{}, nil, err
	}
	c, err := parseCounts(res)
	if err != nil {
		return Counts{}, nil, err
	}
	var f *Freeze
	if len(res) > 3 && res[3] != nil {
		f = new(Freeze)
		if err := json.Unmarshal([]byte(fmt.Sprint(res[3])), f); err != nil {
			return Counts{}, nil, fmt.Errorf("freeze record of %q: %w", login, err)
		}
	}
	return c, f, nil
}

// member is ev's entry in a window: "MS:RCPTS:IP:ID", unique per
// instance and message.
func (r *redisStore) member(ev event) string {
	return fmt.Sprintf("%d:%d:%s:%s-%d", ev.at.UnixMilli(), ev.rcpts, ev.ip, r.id, r.seq.Add(1))
}

// add counts the message with window member (from member) and returns the
// counts.
func (r *redisStore) add(ctx context.Context, login, member string, sample []string, now time.Time) (Counts, error) {
	args := []any{now.UnixMilli(), r.window.Milliseconds(), member}
	for _, s := range sample {
		args = append(args, s)
	}
	res, err := addScript.Run(ctx, r.c, []string{winKey(login), sampleKey(login)}, args...).Slice()
	if err != nil {
		return Counts{}, err
	}
	return parseCounts(res)
}

// backfill adds messages counted locally during an outage to login's window.
func (r *redisStore) backfill(ctx context.Context, login string, entries []backlogEntry, now time.Time) error {
	args := []any{now.UnixMilli(), r.window.Milliseconds()}
	for _, e := range entries {
		args = append(args, e.at.UnixMilli(), e.member)
	}
	return backfillScript.Run(ctx, r.c, []string{winKey(login)}, args...).Err()
}

func parseCounts(res []any) (Counts, error) {
	if len(res) < 3 {
		return Counts{}, fmt.Errorf("unexpected script reply %v", res)
	}
	n, ok1 := res[0].(int64)
	rc, ok2 := res[1].(int64)
	oldest, ok3 := res[2].(int64)
	if !ok1 || !ok2 || !ok3 {
		return Counts{}, fmt.Errorf("unexpected script reply %v", res)
	}
	c := Counts{Messages: int(n), Recipients: int(rc)}
	if oldest > 0 {
		c.Oldest = time.UnixMilli(oldest)
	}
	return c, nil
}

// details lists the client IPs in the window and the recipient sample.
func (r *redisStore) details(ctx context.Context, login string) (ips, sample []string, err error) {
	members, err := r.c.ZRange(ctx, winKey(login), 0, -1).Result()
	if err != nil {
		return nil, nil, err
	}
	for _, m := range members {
		if ip := memberIP(m); ip != "" && !contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	sample, err = r.c.LRange(ctx, sampleKey(login), 0, -1).Result()
	return ips, sample, err
}

// memberIP extracts the IP of "MS:RCPTS:IP:ID" (an IPv6 address has
// colons of its own; the ID has none).
func memberIP(m string) string {
	parts := strings.SplitN(m, ":", 3)
	if len(parts) < 3 {
		return ""
	}
	rest := parts[2]
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return ""
	}
	if ip := rest[:i]; ip != "invalid IP" {
		return ip
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// freeze records f unless the login is frozen already and returns the
// freeze in force; claim takes the notification claim, and notify reports
// whether it was taken by this call.
func (r *redisStore) freeze(ctx context.Context, f Freeze, claim bool) (Freeze, bool, error) {
	js, err := json.Marshal(f)
	if err != nil {
		return Freeze{}, false, err
	}
	flag := "0"
	if claim {
		flag = "1"
	}
	res, err := freezeScript.Run(ctx, r.c, []string{freezeKey(f.Login), notifiedKey(f.Login)}, string(js), flag).Slice()
	if err != nil {
		return Freeze{}, false, err
	}
	if len(res) != 2 || res[0] == nil {
		return Freeze{}, false, fmt.Errorf("unexpected script reply %v", res)
	}
	var cur Freeze
	if err := json.Unmarshal([]byte(fmt.Sprint(res[0])), &cur); err != nil {
		return Freeze{}, false, fmt.Errorf("freeze record of %q: %w", f.Login, err)
	}
	claimed, _ := res[1].(int64)
	return cur, claimed == 1, nil
}

func (r *redisStore) release(ctx context.Context, login string) (bool, error) {
	var del *redis.IntCmd
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, freezeKey(login))
		p.Del(ctx, winKey(login), sampleKey(login), notifiedKey(login))
		return nil
	})
	if err != nil {
		return false, err
	}
	return del.Val() > 0, nil
}

func (r *redisStore) list(ctx context.Context, now time.Time) ([]Account, []Freeze, error) {
	var frozen []Freeze
	logins, err := r.scanLogins(ctx, "f")
	if err != nil {
		return nil, nil, err
	}
	for _, login := range logins {
		js, err := r.c.Get(ctx, freezeKey(login)).Result()
		if errors.Is(err, redis.Nil) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, nil, err
		}
		var f Freeze
		if err := json.Unmarshal([]byte(js), &f); err != nil {
			f = Freeze{Login: login, Reason: "unreadable freeze record: " + err.Error()}
		}
		frozen = append(frozen, f)
	}
	var accounts []Account
	if logins, err = r.scanLogins(ctx, "w"); err != nil {
		return nil, nil, err
	}
	for _, login := range logins {
		c, _, err := r.check(ctx, login, now)
		if err != nil {
			return nil, nil, err
		}
		if c.Messages == 0 {
			continue
		}
		ips, _, err := r.details(ctx, login)
		if err != nil {
			return nil, nil, err
		}
		accounts = append(accounts, Account{Login: login, Counts: c, IPs: ips})
	}
	sortListing(accounts, frozen)
	return accounts, frozen, nil
}

// errRedisDown is returned while Redis is being skipped after a failure.
var errRedisDown = errors.New("redis unreachable")

// redisLog adapts go-redis's logger to slog.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug("redis client", "detail", fmt.Sprintf(format, v...))
}

func setRedisLog(log *slog.Logger) { redis.SetLogger(redisLog{log}) }
