// Package milter is vouch's only contact with the MTA: it speaks the
// milter protocol (through d--j/go-milter's low-level server), keeps the
// state of each SMTP connection, and hands the decisions to the signer and
// policy packages.
package milter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	gomilter "github.com/d--j/go-milter"

	"vouch/internal/dmarcreport"
	"vouch/internal/metrics"
	"vouch/internal/smtpreply"
	"vouch/internal/verify"
	"vouch/policy"
	"vouch/signer"
	"vouch/whitelist"
)

// Env is everything a session needs that comes from the configuration.
// Sessions take the current Env when a connection starts and keep it, so a
// reload never changes the rules in the middle of a message.
type Env struct {
	Signer     *signer.Signer
	Screener   *policy.Screener // nil: inbound screening off
	Accounts   AccountGuard     // nil: no per-account sending limits
	Verify     *Verification    // nil: inbound DKIM/SPF/DMARC verification off
	AuthservID string           // "" means the MTA's host name (macro j)
	MaxHeaders int              // header bytes per message; above it the message is tempfailed
	Log        *slog.Logger
	Metrics    *metrics.Metrics // nil: no metrics
	// DMARC aggregate reports ([dmarc_reports]): Reports records a row per
	// inbound message evaluated for DMARC, Capture reads the reports sent
	// to the rua mailboxes. nil: off.
	Reports *dmarcreport.Recorder
	Capture *dmarcreport.Capture
}

// Verification is what inbound verification needs.
type Verification struct {
	Config    verify.Config
	Policy    *policy.VerifyConfig
	Mode      policy.Mode     // trial turns rejects into tempfails
	Allowlist *whitelist.List // never enforced for these (see policy.Allowlisted)
}

// Limits are the server's fixed limits (they need a restart to change).
type Limits struct {
	MaxSessions  int           // milter connections at once, counted from accept; more are tempfailed, beyond twice this closed
	PacketMemory int64         // bytes of packets above 4 KiB held at once by all connections; 0: no limit
	ReadTimeout  time.Duration // waiting for the MTA's next command
	WriteTimeout time.Duration // sending one reply
}

// AccountGuard limits what one SMTP-authenticated account may send (account
// hijack detection). CheckSender and Accepted are called for authenticated
// sessions only.
type AccountGuard interface {
	// CheckSender is called at MAIL FROM; a non-nil reply refuses the
	// transaction with it.
	CheckSender(ctx context.Context, login string, client netip.Addr) *smtpreply.Reply
	// Accepted is called at the end of every message vouch accepts, with
	// its recipients.
	Accepted(ctx context.Context, login string, client netip.Addr, rcpts []string)
	// ReleaseReply is called at the end of every message, authenticated or
	// not. It reports whether the message is a reply that releases a
	// frozen account (addressed to vouch): the milter then discards it.
	// trustedBy says why the client is trusted ("" for an outside client).
	ReleaseReply(ctx context.Context, rcpts []string, sender string, client netip.Addr, trustedBy string) bool
}

// Server is the milter server.
type Server struct {
	env    atomic.Pointer[Env]
	srv    *gomilter.Server
	log    *slog.Logger
	limits Limits
	conns  atomic.Int64 // open milter connections, from accept to close
	budget *budget      // limits.max_packet_memory; nil: no limit

	acceptLog, refuseLog, warnLog rateLog
}

// protocol: vouch needs no DATA or unknown-command events, and sends no
// reply to recipients, headers and body chunks (one round trip less each);
// connect, HELO and MAIL replies stay on, since the screen answers there.
// Header values come byte-exact (leading space kept) for DKIM.
const protocol = gomilter.OptNoData | gomilter.OptNoUnknown | gomilter.OptNoRcptReply |
	gomilter.OptNoHeaderReply | gomilter.OptNoEOHReply | gomilter.OptNoBodyReply |
	gomilter.OptHeaderLeadingSpace

// macros: Postfix sends only what is asked for once a milter asks for
// anything, so every stage lists what vouch reads there.
var macros = map[gomilter.MacroStage][]gomilter.MacroName{
	gomilter.StageConnect: {gomilter.MacroMTAFQDN, gomilter.MacroDaemonName, gomilter.MacroClientAddr, gomilter.MacroClientName},
	gomilter.StageMail:    {gomilter.MacroQueueId, gomilter.MacroAuthType, gomilter.MacroAuthAuthen},
	gomilter.StageEOH:     {gomilter.MacroQueueId},
	gomilter.StageEOM:     {gomilter.MacroQueueId},
}

// NewServer builds a server for env.
func NewServer(env *Env, limits Limits) *Server {
	s := &Server{log: env.Log, limits: limits, budget: newBudget(limits.PacketMemory)}
	s.env.Store(env)
	if limits.WriteTimeout <= 0 {
		limits.WriteTimeout = 30 * time.Second
	}
	opts := []gomilter.Option{
		gomilter.WithActions(gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine),
		gomilter.WithProtocols(protocol),
		gomilter.WithMilter(func() gomilter.Milter { return &session{srv: s} }),
		gomilter.WithWriteTimeout(limits.WriteTimeout),
		gomilter.WithReadTimeout(limits.ReadTimeout),
	}
	for stage, names := range macros {
		opts = append(opts, gomilter.WithMacroRequest(stage, names))
	}
	s.srv = gomilter.NewServer(opts...)
	// go-milter's warnings come from what the other side sent (refused
	// packets among them): a flood must not flood the log.
	gomilter.LogWarning = func(format string, v ...any) {
		if ok, n := s.warnLog.allow(); ok {
			s.log.Warn("milter protocol", "detail", sprintf(format, v...), "suppressed", n)
		}
	}
	return s
}

// SetEnv makes env the configuration for new connections.
func (s *Server) SetEnv(env *Env) { s.env.Store(env) }

// Env returns the current configuration.
func (s *Server) Env() *Env { return s.env.Load() }

// Sessions is the number of milter connections open now.
func (s *Server) Sessions() int64 { return s.conns.Load() }

// Serve accepts connections on ln until Shutdown; accept errors (out of
// file descriptors...) are logged and retried, only ln's closing ends it.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(guardListener{ln, s})
	if errors.Is(err, gomilter.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for the open ones to end
// until ctx is done; then it closes them.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
