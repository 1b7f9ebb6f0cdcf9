// Package daemon turns a configuration into a running milter: it builds
// the signer, resolver, whitelists and screen from the config, serves,
// reloads on SIGHUP and drains on SIGTERM.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"vouch/internal/config"
	"vouch/internal/hijack"
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
	if err := cfg.Validate(); err != nil {
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

	res, err := resolver.New(resolver.Config{
		Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout, Attempts: cfg.DNS.Attempts, CacheSize: cfg.DNS.CacheSize,
	})
	if err != nil {
		errs = append(errs, err)
	} else {
		res.ObserveQuery = m.DNSQuery
	}
	rt.Resolver = res

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
		pc, perrs := cfg.Policy()
		if len(perrs) == 0 && res != nil {
			rt.Screener = policy.NewScreener(pc, res, lists)
		}
	}
	if cfg.Hijack.Enabled {
		// Validate only: the Guard (admin socket, counters) lives for the
		// whole process and is made by Serve.
		if err := HijackConfig(cfg).Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.TrimSpace(joinErrors(errs)))
	}
	var verification *milter.Verification
	if cfg.Verify.Enabled {
		vc, _ := cfg.VerifyPolicy()
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
			Policy: vc, Mode: policy.Mode(cfg.Screen.Mode), Allowlist: allow,
		}
	}
	rt.Env = &milter.Env{
		Verify: verification,
		Signer: sg, Screener: rt.Screener, AuthservID: cfg.AuthservID,
		MaxHeaders: cfg.Limits.MaxHeaderBytes, Log: log, Metrics: m,
	}
	return rt, nil
}

func joinErrors(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

// start runs the runtime's background work (whitelist polling).
func (rt *Runtime) start() {
	if rt.Lists == nil {
		return
	}
	go rt.Lists.Watch(rt.Config.Whitelist.CheckInterval, rt.stop)
	if sc, ok := SyncConfig(rt.Config); ok {
		var ctx context.Context
		ctx, rt.cancel = context.WithCancel(context.Background())
		s := rt.Config.Whitelist.Sync
		go whitelist.RunSync(ctx, HTTPClient(), sc, s.At, s.Interval, rt.Lists, rt.Env.Log)
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

// SyncConfig is the [whitelist.sync] section for the whitelist package.
func SyncConfig(cfg *config.Config) (whitelist.SyncConfig, bool) {
	s := cfg.Whitelist.Sync
	urls := map[whitelist.Kind]string{}
	for k, u := range map[whitelist.Kind]string{whitelist.Reverse: s.ReverseURL, whitelist.HELO: s.HELOURL, whitelist.Mail: s.MailURL} {
		if u != "" {
			urls[k] = u
		}
	}
	return whitelist.SyncConfig{URLs: urls, MaxSize: s.MaxSize, Timeout: s.Timeout}, len(urls) > 0
}

// HTTPClient is the client for whitelist downloads: the system's CAs, no
// proxy surprises beyond the environment's.
func HTTPClient() *http.Client {
	return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
}

// HijackConfig is the [hijack] section for the hijack package.
func HijackConfig(cfg *config.Config) hijack.Config {
	h := cfg.Hijack
	return hijack.Config{
		Enabled: h.Enabled, Messages: h.Messages, Recipients: h.Recipients, Window: h.Window,
		Action: h.Action, ExemptFile: h.ExemptFile, Postmaster: h.Postmaster,
		NotifySMTP: h.NotifySMTP, NotifyFrom: h.NotifyFrom, StateFile: h.StateFile,
		AdminSocket: h.AdminSocket, Backend: h.Backend, RedisURL: h.RedisURL,
		RedisFailOpen: h.RedisFailOpen, Trial: h.Trial,
		RedisSentinels: h.RedisSentinels, RedisMasterName: h.RedisMasterName, RedisCluster: h.RedisCluster,
		RedisUsername: h.RedisUsername, RedisPassword: h.RedisPassword, RedisSentinelPassword: h.RedisSentinelPassword,
		ReleaseAddress: h.ReleaseAddress, ReleaseTokenTTL: h.ReleaseTokenTTL, ReleaseKeyFile: h.ReleaseKeyFile,
	}
}

// SignerConfig is the [signing] section for the signer package.
func SignerConfig(cfg *config.Config) signer.Config {
	s := cfg.Signing
	inline := make([]signer.InlineKey, len(s.Keys))
	for i, k := range s.Keys {
		inline[i] = signer.InlineKey{Domain: k.Domain, Selector: k.Selector, PrivateKey: k.PrivateKey}
	}
	return signer.Config{
		InternalHosts: s.InternalHosts, InternalHostsFile: s.InternalHostsFile,
		KeyTable: s.KeyTable, SigningTable: s.SigningTable,
		MultipleSignatures: s.MultipleSignatures, RequireSafeKeys: s.RequireSafeKeys,
		Headers: s.Headers, Oversign: s.Oversign, SignatureTTL: s.SignatureTTL,
		LDAPBindDN: s.LDAPBindDN, LDAPBindPassword: s.LDAPBindPassword, LDAPBindPasswordFile: s.LDAPBindPasswordFile,
		LDAPUseTLS: s.LDAPUseTLS, LDAPTLSCAFile: s.LDAPTLSCAFile, LDAPTimeout: s.LDAPTimeout, LDAPCacheTTL: s.LDAPCacheTTL,
		Keys: inline,
	}
}
