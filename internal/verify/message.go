package verify

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"vouch/internal/mailtext"
	"vouch/internal/resolver"
)

// Config is what verifying inbound mail needs. It holds no policy: that is
// policy.DecideMessage's.
type Config struct {
	Resolver      *resolver.Resolver // required
	MaxSignatures int                // DKIM signatures verified per message; <= 0: DefaultMaxSignatures
	Budget        time.Duration      // bound for the SPF evaluation and the DMARC lookups each; <= 0: 20s
	DMARC         *DMARCOptions      // nil: defaults
}

// Message verifies one message for the milter:
//
//	MAIL FROM:       m := verify.NewMessage(cfg, ip, helo, sender)  // starts SPF in the background
//	end of headers:  m.Headers(headers)                             // starts DKIM
//	each body chunk: m.Write(chunk)
//	end of message:  results := m.Finish()                          // waits, evaluates DMARC
//	abort/cleanup:   m.Abort()
//
// Every Message must end with Finish or Abort, or a goroutine is left
// waiting. It is not safe for concurrent use.
type Message struct {
	cfg     Config
	from    []mailtext.Header // the From header fields, for DMARC
	dkim    *DKIMStream
	ctx     context.Context
	cancel  context.CancelFunc
	spfDone chan struct{}
	spf     SPFResult
	done    bool
}

// NewMessage starts the verification at MAIL FROM: SPF for ip, the HELO
// name and the MAIL FROM address (without <>; "" for the null sender) runs
// in the background while the message is transferred.
func NewMessage(cfg Config, ip netip.Addr, helo, mailFrom string) *Message {
	if cfg.Budget <= 0 {
		cfg.Budget = 20 * time.Second
	}
	m := &Message{cfg: cfg, spfDone: make(chan struct{})}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go func() {
		defer close(m.spfDone)
		ctx, cancel := context.WithTimeout(m.ctx, cfg.Budget)
		defer cancel()
		m.spf = CheckSPF(ctx, cfg.Resolver, ip, helo, mailFrom)
	}()
	return m
}

// Headers gives the message's header fields as the MTA sent them (the
// milter's list at end of headers) and starts the DKIM verification.
func (m *Message) Headers(headers []mailtext.Header) {
	if m.done || m.dkim != nil {
		return
	}
	// Keep only the From fields, copied: the caller may reuse its slice.
	for _, h := range headers {
		if strings.EqualFold(strings.TrimSpace(h.Name), "From") {
			m.from = append(m.from, h)
		}
	}
	m.dkim = NewDKIM(lookupTXT(m.ctx, m.cfg.Resolver), m.cfg.MaxSignatures)
	m.dkim.WriteHeaders(headers)
}

// Write feeds a body chunk; it never fails.
func (m *Message) Write(p []byte) (int, error) {
	if m.done || m.dkim == nil {
		return len(p), nil
	}
	return m.dkim.Write(p)
}

// Finish ends the body and returns every result: DKIM, SPF, and DMARC
// over both (From taken from the headers given to Headers).
func (m *Message) Finish() Results {
	if m.done {
		return Results{}
	}
	m.done = true
	defer m.cancel()
	var r Results
	if m.dkim != nil {
		r.DKIM = m.dkim.Close()
		r.DKIMSkipped = m.dkim.Skipped
	}
	<-m.spfDone
	r.SPF = m.spf
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.Budget)
	defer cancel()
	r.DMARC = CheckDMARC(ctx, m.cfg.Resolver, m.from, r.DKIM, r.SPF, m.cfg.DMARC)
	return r
}

// Abort drops the verification: lookups in flight are cancelled, nothing
// waits for them.
func (m *Message) Abort() {
	if m.done {
		return
	}
	m.done = true
	m.cancel()
	if m.dkim != nil {
		m.dkim.Abort()
	}
}
