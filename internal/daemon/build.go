// Package daemon turns a configuration into a running milter: it
// translates the config's sections into each package's settings (and
// checks what those settings mean: socket syntax, action and outcome
// names, the hijack limits; settings.go), builds the signer, resolver,
// whitelists and screen from them, serves, reloads on SIGHUP and drains
// on SIGTERM. Only cmd/ imports it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"vouch/internal/config"
	"vouch/internal/metrics"
	"vouch/internal/resolver"
	"vouch/internal/verify"
	"vouch/milter"
	"vouch/policy"
	"vouch/signer"
	"vouch/whitelist"
)

// Runtime is a configuration brought to life: loaded keys, tables, lists
// and the resolver. A reload builds a new Runtime and swaps it in whole.
type Runtime struct {
	Config   *config.Config
	Env      *milter.Env
	Resolver *resolver.Resolver
	Lists    *whitelist.Set
	Screener *policy.Screener
	Signer   *signer.Signer
	Warnings []string
	stop     chan struct{}
	cancel   context.CancelFunc
}

// NewLogger builds the logger the config asks for, writing to w.
func NewLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Build validates cfg and loads everything it names. The error lists every
// problem found, each naming its file (and line) and reason. m may be nil.
func Build(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*Runtime, error) {
	var errs []error
	if err := check(cfg); err != nil {
		errs = append(errs, err)
	}
	rt := &Runtime{Config: cfg, stop: make(chan struct{})}

	sg, warnings, err := signer.New(SignerConfig(cfg))
	if err != nil {
		errs = append(errs, fmt.Errorf("signing: %w", err))
	}
	rt.Signer = sg
	if sg != nil {
		m.SetLDAPQueries(sg.LDAPQueries)
	}
	rt.Warnings = append(rt.Warnings, warnings...)
	rt.Warnings = append(rt.Warnings, cfg.Deprecations()...)

	res, err := resolver.New(resolver.Config{
		Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout, Attempts: cfg.DNS.Attempts, CacheSize: cfg.DNS.CacheSize,
	})
	if err != nil {
		errs = append(errs, err)
	} else {
		res.ObserveQuery = m.DNSQuery
	}
	rt.Resolver = res
	if rot := sg.Rotation(); rot != nil && res != nil {
		rot.Lookup, rot.Log, rot.Events = freshTXT(res), log, m
	}

	if cfg.Screen.Enabled {
		lists, err := whitelist.NewSet(map[whitelist.Kind]string{
			whitelist.Reverse: cfg.Whitelist.Reverse,
			whitelist.HELO:    cfg.Whitelist.HELO,
			whitelist.Mail:    cfg.Whitelist.Mail,
		}, log)
		if err != nil {
			errs = append(errs, fmt.Errorf("whitelist: %w", err))
		}
		rt.Lists = lists
		pc, perrs := ScreenConfig(cfg)
		if len(perrs) == 0 && res != nil {
			rt.Screener = policy.NewScreener(pc, res, lists)
		}
	}
	// The hijack Guard (admin socket, counters) lives for the whole
	// process and is made by Serve; check validated its settings.
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var verification *milter.Verification
	if cfg.Verify.Enabled {
		vc, _ := VerifyConfig(cfg)
		var allow *whitelist.List
		if cfg.Verify.Allowlist != "" {
			l, problems, err := whitelist.Load(cfg.Verify.Allowlist)
			if err != nil {
				return nil, fmt.Errorf("verify.allowlist: %w", err)
			}
			for _, p := range problems {
				log.Warn("verify allowlist: "+p.Reason, "file", p.File, "line", p.Line)
			}
			allow = l
		}
		verification = &milter.Verification{
			Config: verify.Config{Resolver: res, MaxSignatures: cfg.Verify.MaxSignatures, Budget: cfg.Verify.Budget},
			Policy: vc, Mode: policy.Mode(cfg.VerifyMode()), Allowlist: allow,
		}
	}
	rt.Env = &milter.Env{
		Verify: verification,
		Signer: sg, Screener: rt.Screener, AuthservID: cfg.AuthservID,
		MaxHeaders: cfg.Limits.MaxHeaderBytes, Log: log, Metrics: m,
	}
	return rt, nil
}

// start runs the runtime's background work (whitelist polling, key
// rotation checks).
func (rt *Runtime) start() {
	var ctx context.Context
	ctx, rt.cancel = context.WithCancel(context.Background())
	if rot := rt.Signer.Rotation(); rot != nil {
		go rot.Run(ctx)
	}
	if rt.Lists == nil {
		return
	}
	go rt.Lists.Watch(rt.Config.Whitelist.CheckInterval, rt.stop)
	if sc, ok := SyncConfig(rt.Config); ok {
		s := rt.Config.Whitelist.Sync
		go whitelist.RunSync(ctx, HTTPClient(), sc, s.At, s.Interval, rt.Lists, rt.Env.Log)
	}
}

// freshTXT is the rotation's lookup: uncached, NXDOMAIN and NODATA as no
// records.
func freshTXT(res *resolver.Resolver) signer.TXTLookup {
	return func(ctx context.Context, name string) ([]string, error) {
		txts, _, err := res.TXTFresh(ctx, name)
		return txts, err
	}
}

// close stops the background work and the signer's LDAP connection
// (sessions still running on this runtime reconnect if they need to).
func (rt *Runtime) close() {
	close(rt.stop)
	rt.Signer.Close()
	if rt.cancel != nil {
		rt.cancel()
	}
}

// HTTPClient is the client for whitelist downloads: the system's CAs, no
// proxy surprises beyond the environment's.
func HTTPClient() *http.Client {
	return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
}
