// Package resolver is the one DNS stub resolver every check in vouch uses.
//
// It talks to the configured servers with miekg/dns and keeps apart what
// net.Resolver folds together: a clean NXDOMAIN, a clean NODATA and
// everything else (timeout, SERVFAIL, REFUSED, garbage), which is a
// temporary failure. Only the first two are evidence that a record does not
// exist; a check that turns a timeout into "no record" would refuse good mail.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"

	"vouch/internal/ttlcache"
)

// Status is the outcome of a lookup that got a clean answer.
type Status int

const (
	Found    Status = iota // the answer holds records of the asked type
	NXDomain               // the name does not exist (RCODE 3)
	NoData                 // the name exists, but has no record of that type
)

func (s Status) String() string {
	switch s {
	case Found:
		return "found"
	case NXDomain:
		return "NXDOMAIN"
	case NoData:
		return "NODATA"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Answer is a clean answer for one name and type. Answers come from the
// cache and are shared: callers must not modify them.
type Answer struct {
	Name   string // absolute, lower case
	Type   uint16
	Status Status
	RRs    []mdns.RR // records of Type only (a CNAME chain is dropped)
	TTL    time.Duration
}

// TempError is a lookup that ended without a clean answer. The checks turn
// it into temp_error / temperror, never into "does not exist".
type TempError struct {
	Name    string
	Type    string
	Reason  string // "timeout", "SERVFAIL", "REFUSED", "truncated", ...
	Timeout bool
}

func (e *TempError) Error() string {
	return fmt.Sprintf("dns %s %s: temporary failure: %s", e.Type, e.Name, e.Reason)
}

// IsTemporary reports whether err is a temporary DNS failure.
func IsTemporary(err error) bool {
	var te *TempError
	return errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// Config is the resolver's part of the daemon configuration.
type Config struct {
	Servers     []string      // host:port; empty means /etc/resolv.conf
	Timeout     time.Duration // one query to one server
	Attempts    int           // queries per lookup, cycling through the servers
	CacheSize   int           // entries; 0 disables the cache
	MaxTTL      time.Duration // upper bound for positive answers
	NegativeTTL time.Duration // upper bound for NXDOMAIN/NODATA (RFC 2308)
	ResolvConf  string        // path read when Servers is empty
}

// Stats are counters for metrics and tests.
type Stats struct {
	Queries   atomic.Uint64 // packets sent
	CacheHits atomic.Uint64
	TempErrs  atomic.Uint64
	Collapsed atomic.Uint64 // lookups served by a concurrent identical lookup
}

// Resolver is safe for concurrent use.
type Resolver struct {
	servers  []string
	timeout  time.Duration
	attempts int
	maxTTL   time.Duration
	negTTL   time.Duration
	cache    *cache
	udp, tcp *mdns.Client
	Stats    Stats

	// ObserveQuery, when set, is called once per packet exchange (for metrics).
	ObserveQuery func(qtype string, d time.Duration, err error)
}

// New builds a resolver; it fails when no server is configured or found.
func New(cfg Config) (*Resolver, error) {
	servers := cfg.Servers
	if len(servers) == 0 {
		path := cfg.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		cc, err := mdns.ClientConfigFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("dns: no servers configured and %s: %w", path, err)
		}
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("dns: no servers configured and none in %s", path)
		}
	}
	for i, s := range servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			// A bare address means port 53.
			if ip := net.ParseIP(strings.Trim(s, "[]")); ip != nil {
				servers[i] = net.JoinHostPort(ip.String(), "53")
				continue
			}
			return nil, fmt.Errorf("dns: server %q: want host:port", s)
		}
	}
	r := &Resolver{
		servers:  servers,
		timeout:  cfg.Timeout,
		attempts: cfg.Attempts,
		maxTTL:   cfg.MaxTTL,
		negTTL:   cfg.NegativeTTL,
		cache:    newCache(cfg.CacheSize),
	}
	if r.timeout <= 0 {
		r.timeout = 5 * time.Second
	}
	if r.attempts <= 0 {
		r.attempts = 2
	}
	if r.maxTTL <= 0 {
		r.maxTTL = time.Hour
	}
	if r.negTTL <= 0 {
		r.negTTL = 5 * time.Minute
	}
	r.udp = &mdns.Client{Net: "udp", Timeout: r.timeout, UDPSize: 1232}
	r.tcp = &mdns.Client{Net: "tcp", Timeout: r.timeout}
	return r, nil
}

// Servers returns the servers in use.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// Query looks up name/qtype: from the cache, or by joining an identical
// lookup in flight, or from the servers.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (*Answer, error) {
	fqdn := strings.ToLower(mdns.Fqdn(name))
	if _, ok := mdns.IsDomainName(fqdn); !ok {
		return nil, fmt.Errorf("dns: invalid name %q", name)
	}
	key := cacheKey{fqdn, qtype}
	// A hit (nearly every lookup on a busy MX) needs no fill closure,
	// which would be allocated before Get could tell.
	if a, ok := r.cache.Peek(key); ok {
		r.Stats.CacheHits.Add(1)
		return a, nil
	}
	a, src, err := r.cache.Get(ctx, key, func(ctx context.Context) (*Answer, time.Duration, error) {
		a, err := r.exchange(ctx, fqdn, qtype)
		if err != nil {
			return nil, 0, err
		}
		return a, a.TTL, nil
	})
	switch src {
	case ttlcache.Hit:
		r.Stats.CacheHits.Add(1)
	case ttlcache.Joined:
		r.Stats.Collapsed.Add(1)
	}
	if err != nil {
		var te *TempError
		switch {
		case errors.As(err, &te):
		case ctx.Err() != nil:
			// This caller's deadline ended the wait; the shared query
			// goes on for the others.
			err = &TempError{Name: fqdn, Type: typeName(qtype), Reason: "deadline exceeded", Timeout: true}
		default: // the query panicked
			err = &TempError{Name: fqdn, Type: typeName(qtype), Reason: err.Error()}
		}
		return nil, err
	}
	return a, nil
}

func (r *Resolver) exchange(ctx context.Context, fqdn string, qtype uint16) (*Answer, error) {
	m := new(mdns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.SetEdns0(1232, false)

	tname := mdns.TypeToString[qtype]
	var last *TempError
	for i := 0; i < r.attempts; i++ {
		if err := ctx.Err(); err != nil {
			break
		}
		server := r.servers[i%len(r.servers)]
		resp, err := r.send(ctx, r.udp, m, server, tname)
		if err == nil && resp.Truncated {
			// RFC 7766: a truncated UDP answer is retried over TCP.
			resp, err = r.send(ctx, r.tcp, m, server, tname)
			if err == nil && resp.Truncated {
				err = errors.New("truncated")
			}
		}
		if err != nil {
			last = &TempError{Name: fqdn, Type: tname, Reason: reason(err), Timeout: isTimeout(err)}
			continue
		}
		switch resp.Rcode {
		case mdns.RcodeSuccess, mdns.RcodeNameError:
			return r.answer(fqdn, qtype, resp), nil
		default:
			last = &TempError{Name: fqdn, Type: tname, Reason: mdns.RcodeToString[resp.Rcode]}
		}
	}
	if last == nil {
		// The context ended before the first query.
		last = &TempError{Name: fqdn, Type: tname, Reason: "deadline exceeded", Timeout: true}
	}
	r.Stats.TempErrs.Add(1)
	return nil, last
}

func (r *Resolver) send(ctx context.Context, c *mdns.Client, m *mdns.Msg, server, tname string) (*mdns.Msg, error) {
	r.Stats.Queries.Add(1)
	start := time.Now()
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if r.ObserveQuery != nil {
		r.ObserveQuery(tname, time.Since(start), err)
	}
	return resp, err
}

// answer classifies a NOERROR/NXDOMAIN response and computes how long it
// may be cached.
func (r *Resolver) answer(fqdn string, qtype uint16, resp *mdns.Msg) *Answer {
	a := &Answer{Name: fqdn, Type: qtype}
	if resp.Rcode == mdns.RcodeNameError {
		a.Status = NXDomain
	}
	var minTTL uint32 = ^uint32(0)
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype != qtype {
			continue // CNAME chain
		}
		a.RRs = append(a.RRs, rr)
		minTTL = min(minTTL, rr.Header().Ttl)
	}
	if a.Status == Found && len(a.RRs) == 0 {
		a.Status = NoData
	}
	if a.Status == Found {
		a.TTL = min(time.Duration(minTTL)*time.Second, r.maxTTL)
		return a
	}
	// RFC 2308 §5: negative answers live for min(SOA TTL, SOA MINIMUM).
	a.TTL = time.Minute
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*mdns.SOA); ok {
			a.TTL = time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	a.TTL = min(a.TTL, r.negTTL)
	return a
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

func reason(err error) string {
	switch {
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return err.Error()
}
