// Package hijack detects hijacked mail accounts: an SMTP-authenticated
// login that suddenly sends far more than usual (a stolen password used
// for spam) is stopped after a number of messages or recipients in a
// sliding window, before the server's IP ends up on block lists.
//
// A Guard implements vouch/milter's AccountGuard. The milter asks it at
// MAIL FROM (CheckSender) and tells it about every accepted message of an
// authenticated session (Accepted). Only accepted messages count: a
// refused transaction costs the account nothing. Over the limit, the
// configured action applies:
//
//   - tempfail: MAIL FROM gets 452 4.7.1 until enough messages have left
//     the sliding window. Harmless for a real user with a burst; slows a
//     spammer down to the limit.
//   - freeze: the account is frozen: every later message gets 550 5.7.1
//     (450 4.7.1 in trial mode) until an admin runs `vouch accounts
//     release LOGIN` or the postmaster replies to the notification
//     (release.go), across restarts. The postmaster gets one mail per
//     freeze.
//
// The limit is checked at MAIL FROM, when the recipients of the message
// are not known yet, and counted at the end of the message. So the
// message that reaches the recipients limit still goes out whole (a
// message with 50 recipients at 480 of 500 makes 530), and parallel
// transactions of one login that all pass MAIL FROM before any ends can
// overshoot by their number. With the freeze action, an account whose
// count goes past a limit is frozen right at the end of that message.
package hijack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"vouch/internal/mailtext"
	"vouch/internal/smtpreply"
	"vouch/whitelist"
)

// Replies. Texts stay generic (the reason goes to the log); the enhanced
// code's class follows the basic code (smtpreply.Reply).
var (
	// RFC 3463 X.7.1: delivery not authorized; 452 as for "too many".
	replyLimited = smtpreply.Reply{Code: 452, Enhanced: "7.1", Text: "Sending limit of this account reached, try again later"}
	replyFrozen  = smtpreply.Reply{Code: 550, Enhanced: "7.1", Text: "Account locked for unusual sending activity, contact your administrator"}
	replyTrial   = smtpreply.Reply{Code: 450, Enhanced: "7.1", Text: "Account locked for unusual sending activity, contact your administrator"}
	// X.3.0: the Redis counters are unreachable and redis_fail_open is off.
	replyBackend = smtpreply.Reply{Code: 451, Enhanced: "3.0", Text: "Temporary local problem, try again later"}
)

// Stats are counters since New, for metrics.
type Stats struct {
	Limited        uint64 // MAIL FROM tempfailed over a limit (tempfail action)
	FrozenRefused  uint64 // MAIL FROM refused because the account is frozen (the one that froze it included)
	Freezes        uint64 // accounts frozen by this instance
	Notifications  uint64 // freeze notifications sent
	NotifyErrors   uint64 // freeze notifications that could not be sent
	RedisErrors    uint64 // failed Redis operations
	RedisFallbacks uint64 // decisions made on local counts because Redis was unreachable (fail-open)
	RedisRefused   uint64 // MAIL FROM tempfailed because Redis was unreachable (fail-closed)
	StateErrors    uint64 // state file writes that failed
}

// Guard enforces the limits. Its methods are safe for concurrent use and
// on a nil *Guard (which limits nothing).
type Guard struct {
	cfg    Config
	log    *slog.Logger
	exempt exempt
	host   string

	local *memStore   // the store (memory backend), or the local mirror (redis)
	redis *redisStore // nil for the memory backend

	releaseKey []byte // HMAC key of release tokens; nil: release by reply off

	redisRetry time.Duration // how long Redis is skipped after a failure
	redisDown  atomic.Int64  // unix nanos (real time) until which Redis is skipped; 0: up

	admin   net.Listener
	stop    chan struct{}
	wg      sync.WaitGroup // background goroutines and notifications
	closeMu sync.Once
	warned  sync.Once

	limited, frozenRefused, freezes, notifications, notifyErrors atomic.Uint64
	redisErrors, redisFallbacks, redisRefused, stateErrors       atomic.Uint64
}

// New builds a Guard: it reads the exempt list and the state file, opens
// the Redis client and the admin socket. With cfg.Enabled false it
// returns nil and no error; a nil *Guard limits nothing, but assign it to
// milter.Env.Accounts only when it is not nil (a nil pointer in a non-nil
// interface still works here, but costs a call per message).
func New(cfg Config, log *slog.Logger) (*Guard, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Guard{cfg: cfg, log: log.With("module", "hijack"), redisRetry: 2 * time.Second, stop: make(chan struct{})}
	g.host, _ = os.Hostname()

	if cfg.ExemptFile != "" {
		list, problems, err := whitelist.Load(cfg.ExemptFile)
		if err != nil {
			return nil, fmt.Errorf("hijack.exempt_file: %w", err)
		}
		for _, p := range problems {
			g.log.Warn("exempt list", "problem", p.String())
		}
		g.exempt = exempt{list}
	}

	statePath := ""
	if cfg.Backend == BackendMemory {
		statePath = cfg.StateFile
		if cfg.Action == ActionFreeze {
			if err := os.MkdirAll(filepath.Dir(statePath), 0o750); err != nil {
				return nil, fmt.Errorf("hijack.state_file: %w", err)
			}
		}
	}
	local, err := newMemStore(cfg.Window, statePath)
	if err != nil {
		return nil, fmt.Errorf("hijack.state_file: %w", err)
	}
	g.local = local

	if cfg.ReleaseAddress != "" {
		if g.releaseKey, err = loadReleaseKey(cfg.ReleaseKeyFile); err != nil {
			return nil, fmt.Errorf("hijack.release_key_file: %w", err)
		}
	}

	if cfg.Backend == BackendRedis {
		id := make([]byte, 6)
		rand.Read(id)
		rs, err := newRedisStore(cfg.redisOptions(), cfg.Window, hex.EncodeToString(id))
		if err != nil {
			return nil, err
		}
		g.redis = rs
		setRedisLogger(g.log)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = rs.ping(ctx)
		if err == nil {
			var n int
			if n, err = rs.migrate(ctx); n > 0 {
				g.log.Info("freezes moved from the old redis hash to per-login keys", "freezes", n)
			}
		}
		cancel()
		if err != nil {
			// Not fatal: vouch may start before Redis; until Redis answers,
			// redis_fail_open decides.
			g.redisFailed(err)
		}
	}

	if cfg.AdminSocket != "" {
		ln, err := listenAdmin(cfg.AdminSocket)
		if err != nil {
			g.closeStores()
			return nil, fmt.Errorf("hijack.admin_socket: %w", err)
		}
		g.admin = ln
		g.wg.Add(1)
		go func() { defer g.wg.Done(); g.serveAdmin(ln) }()
	}

	g.wg.Add(1)
	go func() { defer g.wg.Done(); g.sweepLoop() }()
	g.log.Info("account limits", "backend", cfg.Backend, "action", cfg.Action, "messages", cfg.Messages,
		"recipients", cfg.Recipients, "window", cfg.Window, "trial", cfg.Trial, "exempt", g.exempt.list.Len(),
		"frozen", len(local.frozen))
	return g, nil
}

// Close stops the admin socket, waits for notifications in flight (each
// ends within its SMTP timeout) and closes the Redis client.
func (g *Guard) Close() error {
	if g == nil {
		return nil
	}
	g.closeMu.Do(func() {
		close(g.stop)
		if g.admin != nil {
			g.admin.Close()
		}
		g.wg.Wait()
		g.closeStores()
	})
	return nil
}

func (g *Guard) closeStores() {
	if g.redis != nil {
		g.redis.close()
	}
}

// Stats returns the counters.
func (g *Guard) Stats() Stats {
	if g == nil {
		return Stats{}
	}
	return Stats{
		Limited: g.limited.Load(), FrozenRefused: g.frozenRefused.Load(), Freezes: g.freezes.Load(),
		Notifications: g.notifications.Load(), NotifyErrors: g.notifyErrors.Load(),
		RedisErrors: g.redisErrors.Load(), RedisFallbacks: g.redisFallbacks.Load(),
		RedisRefused: g.redisRefused.Load(), StateErrors: g.stateErrors.Load(),
	}
}

func (g *Guard) now() time.Time { return g.cfg.Now() }

// subject reports whether login is subject to the limits; it returns the
// normalised login.
func (g *Guard) subject(login string) (string, bool) {
	login = normalizeLogin(login)
	if login == "" {
		return "", false
	}
	if unknownLogin(login) {
		g.warned.Do(func() {
			g.log.Warn("SMTP AUTH without a login name ({auth_authen} macro missing): not limited; add {auth_authen} to milter_mail_macros", "login", login)
		})
		return "", false
	}
	if _, ok := g.exempt.match(login); ok {
		return login, false
	}
	return login, true
}

// CheckSender is called at MAIL FROM of an authenticated session; a
// non-nil reply refuses the transaction.
func (g *Guard) CheckSender(ctx context.Context, login string, client netip.Addr) *smtpreply.Reply {
	if g == nil {
		return nil
	}
	login, ok := g.subject(login)
	if !ok {
		return nil
	}
	now := g.now()
	counts, frozen, err := g.check(ctx, login, now)
	if err != nil {
		g.redisRefused.Add(1)
		g.log.Warn("account check: redis unreachable, tempfailed (redis_fail_open = false)", "login", login, "ip", client.String())
		r := replyBackend
		return &r
	}
	if frozen != nil {
		g.frozenRefused.Add(1)
		g.log.Info("account frozen: MAIL FROM refused", "login", login, "ip", client.String(), "since", frozen.Since.Format(time.RFC3339), "trial", g.cfg.Trial)
		return g.frozenReply()
	}
	over := g.over(counts, false)
	if over == "" {
		return nil
	}
	if g.cfg.Action == ActionTempfail {
		g.limited.Add(1)
		g.log.Warn("account over its sending limit: MAIL FROM tempfailed", "login", login, "ip", client.String(),
			"reason", over, "messages", counts.Messages, "recipients", counts.Recipients,
			"until", counts.Oldest.Add(g.cfg.Window).Format(time.RFC3339))
		r := replyLimited
		return &r
	}
	g.freeze(ctx, login, counts, over, now)
	g.frozenRefused.Add(1)
	return g.frozenReply()
}

// Accepted counts an accepted message of an authenticated session.
func (g *Guard) Accepted(ctx context.Context, login string, client netip.Addr, rcpts []string) {
	if g == nil {
		return
	}
	login, ok := g.subject(login)
	if !ok {
		return
	}
	now := g.now()
	ev := event{at: now, rcpts: len(rcpts), ip: client}
	sample := recipientSample(rcpts)
	// Always counted locally: with Redis this is the fallback's memory.
	counts := g.local.add(login, ev, sample, now)
	if g.redis != nil {
		// One member for both paths: if the add reached Redis but its
		// answer did not, the later write back changes nothing.
		member := g.redis.member(ev)
		var rc Counts
		if g.withRedis(ctx, func(ctx context.Context) error {
			var err error
			rc, err = g.redis.add(ctx, login, member, sample, now)
			return err
		}) {
			counts = rc
		} else {
			g.local.addBacklog(login, backlogEntry{at: now, member: member})
		}
	}
	if g.cfg.Action == ActionFreeze {
		if over := g.over(counts, true); over != "" {
			g.freeze(ctx, login, counts, over, now)
		}
	}
}

// over names the limit counts is over, or returns "". At MAIL FROM the
// next message is over when the window already holds the limit (strict
// false); after counting, only when a limit was passed (strict true).
func (g *Guard) over(c Counts, strict bool) string {
	m, r := c.Messages, c.Recipients
	what := "reached"
	if strict {
		m, r, what = m-1, r-1, "exceeded"
	}
	switch {
	case m >= g.cfg.Messages:
		return fmt.Sprintf("messages limit %s: %d in %s (limit %d)", what, c.Messages, g.cfg.Window, g.cfg.Messages)
	case r >= g.cfg.Recipients:
		return fmt.Sprintf("recipients limit %s: %d in %s (limit %d)", what, c.Recipients, g.cfg.Window, g.cfg.Recipients)
	}
	return ""
}

func (g *Guard) frozenReply() *smtpreply.Reply {
	r := replyFrozen
	if g.cfg.Trial {
		r = replyTrial
	}
	return &r
}

// check reads login's counts and freeze from the store; with Redis
// unreachable, from the local mirror (fail-open) or an error (fail-closed).
func (g *Guard) check(ctx context.Context, login string, now time.Time) (Counts, *Freeze, error) {
	if g.redis == nil {
		c, f := g.local.check(login, now)
		return c, f, nil
	}
	var c Counts
	var f *Freeze
	if g.withRedis(ctx, func(ctx context.Context) error {
		var err error
		c, f, err = g.redis.check(ctx, login, now)
		return err
	}) {
		g.local.cacheFreeze(login, f)
		return c, f, nil
	}
	if !g.cfg.RedisFailOpen {
		return Counts{}, nil, errRedisDown
	}
	g.redisFallbacks.Add(1)
	c, f = g.local.check(login, now)
	return c, f, nil
}

// freeze freezes login and, if this call made the freeze, logs it and
// sends the notification.
func (g *Guard) freeze(ctx context.Context, login string, c Counts, reason string, now time.Time) {
	f := Freeze{ID: newFreezeID(), Login: login, Since: now.UTC(), Reason: reason, Messages: c.Messages, Recipients: c.Recipients, Host: g.host}
	var sample []string
	var cur Freeze
	var notify bool
	switch {
	case g.redis == nil:
		f.IPs, sample = g.local.details(login, now)
		var err error
		cur, notify, err = g.local.freeze(f, false)
		if err != nil {
			g.stateErrors.Add(1)
			g.log.Error("account frozen in memory only: state file not written", "login", login, "err", err)
		}
	case g.withRedis(ctx, func(ctx context.Context) error {
		var err error
		if f.IPs, sample, err = g.redis.details(ctx, login); err != nil {
			return err
		}
		cur, notify, err = g.redis.freeze(ctx, f, true)
		return err
	}):
		g.local.cacheFreeze(login, &cur)
	default:
		// Redis unreachable: freeze here and write it back later. Other
		// instances may freeze (and mail) too while Redis is down.
		f.IPs, sample = g.local.details(login, now)
		cur, notify, _ = g.local.freeze(f, true)
	}
	if !notify {
		return
	}
	g.freezes.Add(1)
	g.log.Warn("account frozen", "login", login, "reason", reason, "messages", c.Messages, "recipients", c.Recipients,
		"ips", strings.Join(cur.IPs, ","), "trial", g.cfg.Trial, "release", "vouch accounts release "+login)
	g.sendNotification(cur, sample)
}

// Release unfreezes login and clears its counters; by says who asked and
// how, for the log. It reports whether the login was frozen.
func (g *Guard) Release(ctx context.Context, login, by string) (bool, error) {
	if g == nil {
		return false, nil
	}
	login = normalizeLogin(login)
	if login == "" {
		return false, fmt.Errorf("empty login")
	}
	was, err := g.local.release(login)
	if err != nil {
		g.stateErrors.Add(1)
		return was, err
	}
	if g.redis != nil {
		rwas, err := g.redis.release(ctx, login)
		if err != nil {
			g.redisFailed(err)
			g.log.Warn("account released on this instance only (redis unreachable)", "login", login, "by", by, "err", err)
			return was, fmt.Errorf("redis: %w (released on this instance only)", err)
		}
		was = was || rwas
	}
	g.log.Info("account released", "login", login, "was_frozen", was, "by", by)
	return was, nil
}

// Listing is what `vouch accounts list` shows.
type Listing struct {
	Backend    string    `json:"backend"`
	Source     string    `json:"source"`         // where the numbers come from
	Node       string    `json:"node,omitempty"` // the Redis that answered: node address, or the Cluster's masters
	Action     string    `json:"action"`
	Trial      bool      `json:"trial"`
	Messages   int       `json:"messages_limit"`
	Recipients int       `json:"recipients_limit"`
	Window     string    `json:"window"`
	Accounts   []Account `json:"accounts"`
	Frozen     []Freeze  `json:"frozen"`
}

// List returns the counters of every login active in the window and the
// frozen accounts.
func (g *Guard) List(ctx context.Context) (*Listing, error) {
	l := &Listing{Backend: g.cfg.Backend, Source: g.cfg.Backend, Action: g.cfg.Action, Trial: g.cfg.Trial,
		Messages: g.cfg.Messages, Recipients: g.cfg.Recipients, Window: g.cfg.Window.String()}
	now := g.now()
	if g.redis != nil {
		var accounts []Account
		var frozen []Freeze
		if g.withRedis(ctx, func(ctx context.Context) error {
			var err error
			accounts, frozen, err = g.redis.list(ctx, now)
			return err
		}) {
			l.Accounts, l.Frozen = accounts, frozen
			l.Node = g.redis.describe(ctx)
			return l, nil
		}
		l.Source = "local counters of this instance (redis unreachable)"
	}
	l.Accounts, l.Frozen = g.local.list(now)
	return l, nil
}

// withRedis runs fn against Redis unless Redis failed within redisRetry;
// it first writes back freezes made during an outage. It reports whether
// fn ran and succeeded; a failure is counted, logged once per outage, and
// makes the following calls skip Redis for redisRetry, so that a dead
// server costs one timeout per redisRetry instead of one per message.
func (g *Guard) withRedis(ctx context.Context, fn func(context.Context) error) bool {
	if until := g.redisDown.Load(); until != 0 && time.Now().UnixNano() < until {
		return false
	}
	if err := g.pushPending(); err != nil {
		g.redisFailed(err)
		return false
	}
	// The milter passes context.Background(): bound every operation, so a
	// Redis that accepts connections but does not answer costs at most
	// redisTimeout per message, then redisRetry of local decisions.
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		g.redisFailed(err)
		return false
	}
	if g.redisDown.Swap(0) != 0 {
		g.log.Info("redis reachable again: counting in redis")
	}
	return true
}

func (g *Guard) redisFailed(err error) {
	g.redisErrors.Add(1)
	if g.redisDown.Swap(time.Now().Add(g.redisRetry).UnixNano()) == 0 {
		mode := "fail-open: counting locally"
		if !g.cfg.RedisFailOpen {
			mode = "fail-closed: authenticated senders are tempfailed"
		}
		g.log.Error("redis unreachable", "err", err, "mode", mode)
	}
}

// redisTimeout bounds one Redis operation (a script, or a freeze with its
// details).
const redisTimeout = 2 * time.Second

// pushPending writes what this instance did alone during an outage to
// Redis: the messages it counted (so the shared window holds them) and the
// freezes it made. Their notification was sent already: the claim is
// taken without mailing.
func (g *Guard) pushPending() error {
	for login, entries := range g.local.takeBacklog(g.now()) {
		ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		err := g.redis.backfill(ctx, login, entries, g.now())
		cancel()
		if err != nil {
			return err
		}
		g.local.doneBacklog(login, entries)
		g.log.Info("messages counted during the redis outage added to redis", "login", login, "messages", len(entries))
	}
	for _, f := range g.local.takePending() {
		ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		cur, _, err := g.redis.freeze(ctx, f, true)
		cancel()
		if err != nil {
			return err
		}
		g.local.donePending(f.Login)
		g.local.cacheFreeze(f.Login, &cur)
		g.log.Info("freeze made during the redis outage written to redis", "login", f.Login)
	}
	return nil
}

func (g *Guard) sweepLoop() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.local.sweep(g.now())
		}
	}
}

// recipientSample keeps the first sampleSize recipients of a message,
// reduced to printable ASCII for the notification.
func recipientSample(rcpts []string) []string {
	n := min(len(rcpts), sampleSize)
	out := make([]string, 0, n)
	for _, r := range rcpts[:n] {
		out = append(out, mailtext.Printable(strings.Trim(r, "<>")))
	}
	return out
}

var redisLoggerOnce sync.Once

// setRedisLogger routes go-redis's own messages (pool and dial trouble)
// into slog at debug level; the Guard logs the outage itself once.
func setRedisLogger(log *slog.Logger) {
	redisLoggerOnce.Do(func() { setRedisLog(log) })
}
