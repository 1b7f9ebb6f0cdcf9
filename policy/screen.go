package policy

import (
	"context"
	"net/netip"

	"vouch/internal/resolver"
	"vouch/whitelist"
)

// Screener runs the checks for SMTP connections. It is immutable: a reload
// builds a new one, and connections keep the one they started with.
type Screener struct {
	cfg   *Config
	res   *resolver.Resolver
	lists *whitelist.Set
}

// NewScreener builds a screener; lists may be nil (no exceptions).
func NewScreener(cfg *Config, res *resolver.Resolver, lists *whitelist.Set) *Screener {
	return &Screener{cfg: cfg, res: res, lists: lists}
}

// Config returns the screen's configuration.
func (s *Screener) Config() *Config { return s.cfg }

// Conn screens one SMTP connection. Lookups for the PTR and HELO checks
// start as soon as the client and its HELO are known and run in the
// background; Mail waits for them, so the decision is made at MAIL FROM,
// when SMTP AUTH is known.
type Conn struct {
	s      *Screener
	ip     netip.Addr
	helo   string
	ptr    *pending
	heloP  *pending
	ctx    context.Context
	cancel context.CancelFunc
}

// pending is a check running in the background.
type pending struct {
	done chan struct{}
	res  Result
}

// start runs a check in the background, or at once when its first
// answer is cached: on a busy MX nearly every answer is, and the
// goroutine (its start, stack growth and wake-up) cost more CPU than the
// cached lookups (about 10 % of a screened message's). An answer that
// expires in between is looked up from the servers, within the budget.
func (c *Conn) start(check Check, cached bool, f func(ctx context.Context) Result) *pending {
	p := &pending{done: make(chan struct{})}
	run := func() {
		defer close(p.done)
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.Budget)
		defer cancel()
		p.res = f(ctx)
		p.res.Check = check
	}
	if cached {
		run()
	} else {
		go run()
	}
	return p
}

func (p *pending) wait(ctx context.Context, check Check) Result {
	// A result that is in is used even when the budget ran out meanwhile
	// (the MAIL check ran first): select would pick either at random.
	select {
	case <-p.done:
		return p.res
	default:
	}
	select {
	case <-p.done:
		return p.res
	case <-ctx.Done():
		return Result{Check: check, Undetermined: Outcomes[check], TempErr: ctx.Err()}
	}
}

// Connect starts screening a client. Internal hosts are not screened: the
// caller does not call Connect for them.
func (s *Screener) Connect(ip netip.Addr) *Conn {
	c := &Conn{s: s, ip: ip.Unmap()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if s.enabled(PTR) {
		c.ptr = c.start(PTR, s.res.PTRCached(c.ip), c.runPTR)
	}
	return c
}

// Helo starts the HELO check (again, if the client sends a new HELO, e.g.
// after STARTTLS).
func (c *Conn) Helo(name string) {
	c.helo = name
	if c.s.enabled(HELO) {
		c.heloP = c.start(HELO, c.s.res.HostCached(name), func(ctx context.Context) Result { return c.runHELO(ctx, name) })
	}
}

// Close stops lookups still running.
func (c *Conn) Close() { c.cancel() }

// Mail decides about one transaction.
func (c *Conn) Mail(ctx context.Context, sender string, authenticated bool) Decision {
	in := Input{IP: c.ip, HELO: c.helo, Sender: sender, Authenticated: authenticated}
	if authenticated {
		return Decide(c.s.cfg, in, nil)
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.cfg.Budget)
	defer cancel()
	// The MAIL check runs here while the PTR and HELO checks go on in the
	// background: the same overlap as a goroutine of its own, without one.
	mail := Result{Check: Mail, Skipped: true}
	if c.s.enabled(Mail) {
		mail = c.runMail(ctx, sender)
		mail.Check = Mail
	}
	results := []Result{c.result(ctx, PTR, c.ptr), c.result(ctx, HELO, c.heloP), mail}
	return Decide(c.s.cfg, in, results)
}

func (c *Conn) result(ctx context.Context, check Check, p *pending) Result {
	if p == nil {
		// Disabled, or (HELO) the client sent none: nothing to judge.
		return Result{Check: check, Skipped: true}
	}
	return p.wait(ctx, check)
}

func (s *Screener) enabled(c Check) bool { return s.cfg.Checks[c].Enabled }

func (c *Conn) runPTR(ctx context.Context) Result {
	list := c.s.lists.List(whitelist.Reverse)
	if e, ok := list.MatchIP(c.ip); ok {
		return Result{Exempt: &e}
	}
	r := checkPTR(ctx, c.s.res, c.ip, c.s.cfg.MaxPTRNames)
	// A PTR name on the list exempts too: the name is the IP owner's
	// statement, not the client's.
	for _, name := range r.PTRNames {
		if e, ok := list.MatchHost(name); ok {
			r.Exempt = &e
			break
		}
	}
	return r
}

func (c *Conn) runHELO(ctx context.Context, name string) Result {
	list := c.s.lists.List(whitelist.HELO)
	if e, ok := list.MatchIP(c.ip); ok {
		return Result{Exempt: &e}
	}
	if e, ok := list.MatchHost(name); ok {
		return Result{Exempt: &e}
	}
	return checkHELO(ctx, c.s.res, c.ip, name)
}

func (c *Conn) runMail(ctx context.Context, sender string) Result {
	list := c.s.lists.List(whitelist.Mail)
	if e, ok := list.MatchIP(c.ip); ok {
		return Result{Exempt: &e}
	}
	if e, ok := list.MatchAddress(sender); ok {
		return Result{Exempt: &e}
	}
	return checkSender(ctx, c.s.res, c.ip, sender)
}
