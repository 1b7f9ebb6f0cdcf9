package signer

import (
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/mailtext"
)

// Message signs one message while its body streams through Write. Memory
// does not grow with the body: it is canonicalized and hashed as it comes.
type Message struct {
	sigs []*dkim.Signer
	crlf mailtext.CRLF
	err  error
}

// NewMessage starts the signatures for reqs over the given header block.
func (s *Signer) NewMessage(reqs []Request, headers []mailtext.Header) (*Message, error) {
	keys, block := s.headerKeys(headers)
	m := &Message{}
	var expires time.Time
	if s.cfg.SignatureTTL > 0 {
		expires = time.Now().Add(s.cfg.SignatureTTL)
	}
	for _, r := range reqs {
		sig, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 r.Domain,
			Selector:               r.Key.Selector,
			Identifier:             r.Identity,
			Signer:                 r.Key.signWith(),
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             keys,
			Expiration:             expires,
		})
		if err != nil {
			m.Abort()
			return nil, err
		}
		m.sigs = append(m.sigs, sig)
		if _, err := sig.Write(block); err != nil {
			m.Abort()
			return nil, err
		}
	}
	return m, nil
}

// headerKeys builds h= and the header block the signers read. Every
// instance of a configured header is signed; oversigned names get one more
// entry, so that a copy added later breaks the signature (RFC 6376 §8.15).
// Only signed headers go into the block: the signer picks by name from the
// bottom, so leaving others out changes nothing and saves work.
func (s *Signer) headerKeys(headers []mailtext.Header) ([]string, []byte) {
	count := map[string]int{}
	var b strings.Builder
	for _, h := range headers {
		lower := strings.ToLower(h.Name)
		if !s.headers[lower] {
			continue
		}
		count[lower]++
		b.WriteString(h.Name)
		b.WriteByte(':')
		writeCRLF(&b, h.Value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")

	var keys []string
	// Oversigned names that are not in Headers are in the block too: all
	// their instances must be in h= before the extra entry.
	for _, h := range s.hOrder {
		for range count[h.lower] {
			keys = append(keys, h.name)
		}
	}
	for _, h := range s.oversign {
		if count[h.lower] == 0 && mtaAdded[h.lower] {
			continue
		}
		keys = append(keys, h.name)
	}
	return keys, []byte(b.String())
}

// headerName is a configured header name and its lower-case form.
type headerName struct{ name, lower string }

// mtaAdded are headers an MTA adds to a message that lacks them (RFC 6409
// §8.2, §8.3: Sendmail does it at delivery, after the milter signed).
// Oversigning one that is absent would make that later addition break the
// signature, so they are oversigned only when present.
var mtaAdded = map[string]bool{"date": true, "message-id": true}

// writeCRLF writes s with every bare LF turned into CRLF.
func writeCRLF(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(s[i])
	}
}

// Write feeds a body chunk.
func (m *Message) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if err := m.writeAll(m.crlf.Fix(p)); err != nil {
		m.err = err
		return 0, err
	}
	return len(p), nil
}

func (m *Message) writeAll(p []byte) error {
	for _, s := range m.sigs {
		if _, err := s.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// Finish completes the signatures and returns the DKIM-Signature header
// values, without the name and without a trailing CRLF, ready to insert.
func (m *Message) Finish() ([]string, error) {
	if m.err != nil {
		m.Abort()
		return nil, m.err
	}
	var out []string
	var errs []error
	for _, s := range m.sigs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
			continue
		}
		v := strings.TrimPrefix(s.Signature(), "DKIM-Signature:")
		out = append(out, strings.TrimRight(v, "\r\n"))
	}
	m.sigs = nil
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Abort releases the signers (each holds a goroutine until closed).
func (m *Message) Abort() {
	for _, s := range m.sigs {
		s.Close()
	}
	m.sigs = nil
}
