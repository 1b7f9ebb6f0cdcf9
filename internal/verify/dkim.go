package verify

import (
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/mailtext"
)

// DefaultMaxSignatures is how many DKIM signatures of one message are
// verified when the caller does not say. Each costs a DNS lookup and a
// pass over the body; a message with hundreds of signatures must not cost
// hundreds of lookups. OpenDKIM's MaximumSignaturesToVerify is 3.
const DefaultMaxSignatures = 5

// bPrefixLen is how much of b= goes into header.b: RFC 6008 §4 asks for at
// least 8 characters, enough to tell the signatures of a message apart.
const bPrefixLen = 12

// DKIMResult is the outcome for one DKIM-Signature header field.
type DKIMResult struct {
	Status     Status // pass, fail, policy, neutral, temperror, permerror
	Reason     string // why it is not pass ("body hash did not verify", "key revoked", ...)
	Domain     string // d=, lower case (header.d)
	Selector   string // s= (header.s)
	Algorithm  string // a= (header.a), e.g. rsa-sha256
	Identifier string // i=, for logs
	B          string // the first characters of b= (header.b, RFC 6008)
}

// DKIMStream verifies every DKIM signature of a message while the message
// streams, with go-msgauth's dkim.VerifyWithOptions running in a goroutine
// fed through an io.Pipe: the body is canonicalized and hashed as it comes
// and memory does not grow with the message.
//
// Use: NewDKIM, WriteHeaders once (end of headers), Write per body chunk,
// then Close for the results, or Abort if the message is dropped.
// Writes block while the verifier waits for a key from DNS (the lookup
// comes before body hashing in go-msgauth), at most the resolver's
// timeout × attempts. A DKIMStream is not safe for concurrent use.
//
// Only the first maxSigs signatures (in header order: the newest first)
// are verified; the others are counted in Skipped and not reported at all,
// so that a message cannot inflate the Authentication-Results header or
// the DNS traffic. An author signature below maxSigs newer ones therefore
// goes unverified; raise the limit if that matters.
type DKIMStream struct {
	lookup  func(string) ([]string, error)
	maxSigs int

	sigs    []DKIMResult // the verified signatures' tags, filled in by Close
	Skipped int          // signatures beyond maxSigs

	pw     *io.PipeWriter
	done   chan struct{}
	verifs []*dkim.Verification
	err    error

	crlf    mailtext.CRLF // bare LF → CRLF across chunks
	started bool          // WriteHeaders was called
	closed  bool
}

// errVerifierDone closes the pipe's read side when the verifier returns:
// go-msgauth may stop reading early (no key, bad tags), and a writer would
// then block forever.
var errVerifierDone = errors.New("dkim verifier finished")

// errAborted ends a verification whose message was dropped.
var errAborted = errors.New("message aborted")

// NewDKIM prepares the verification of one message. lookup returns TXT
// records with bare *net.DNSError errors (see LookupTXT); maxSigs <= 0
// means DefaultMaxSignatures.
func NewDKIM(lookup func(string) ([]string, error), maxSigs int) *DKIMStream {
	if maxSigs <= 0 {
		maxSigs = DefaultMaxSignatures
	}
	return &DKIMStream{lookup: lookup, maxSigs: maxSigs}
}

// WriteHeaders starts the verification with the message's header fields
// as the MTA gave them (value after the colon byte for byte, folded with
// bare LF). Without a DKIM-Signature there is nothing to verify and the
// body is ignored. Call it once.
func (d *DKIMStream) WriteHeaders(headers []mailtext.Header) {
	if d.started || d.closed {
		return
	}
	d.started = true
	for _, h := range headers {
		// go-msgauth finds signatures by the trimmed field name.
		if !strings.EqualFold(strings.TrimSpace(h.Name), "DKIM-Signature") {
			continue
		}
		if len(d.sigs) == d.maxSigs {
			d.Skipped++
			continue
		}
		d.sigs = append(d.sigs, parseSignatureTags(h.Value))
	}
	if len(d.sigs) == 0 {
		return
	}

	var b strings.Builder
	for _, h := range headers {
		b.WriteString(h.Name)
		b.WriteByte(':')
		writeHeaderValue(&b, h.Value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")

	pr, pw := io.Pipe()
	d.pw = pw
	d.done = make(chan struct{})
	opts := &dkim.VerifyOptions{LookupTXT: d.lookup, MaxVerifications: d.maxSigs}
	go func() {
		defer close(d.done)
		d.verifs, d.err = dkim.VerifyWithOptions(pr, opts)
		pr.CloseWithError(errVerifierDone)
	}()
	d.write([]byte(b.String()))
}

// Write feeds a body chunk. Bare LF line ends become CRLF (across chunk
// boundaries), as the receiver's view after SMTP has them. It never fails:
// once the verifier has what it needs, chunks are dropped.
func (d *DKIMStream) Write(p []byte) (int, error) {
	if d.pw == nil || d.closed || len(p) == 0 {
		return len(p), nil
	}
	d.write(d.crlf.Fix(p))
	return len(p), nil
}

// write hands data to the verifier. io.Pipe copies before Write returns,
// so the caller may reuse p; an error only means the verifier is done.
func (d *DKIMStream) write(p []byte) {
	_, _ = d.pw.Write(p)
}

// Close ends the body, waits for the verifier and returns one result per
// verified signature, in header order (nil without signatures).
func (d *DKIMStream) Close() []DKIMResult {
	if d.closed {
		return d.sigs
	}
	d.closed = true
	if d.pw == nil {
		return d.sigs
	}
	d.pw.Close()
	<-d.done
	d.fill()
	return d.sigs
}

// Abort drops the verification without waiting for it: the verifier
// goroutine ends as soon as it reads again (after a pending key lookup).
func (d *DKIMStream) Abort() {
	if d.closed {
		return
	}
	d.closed = true
	if d.pw != nil {
		d.pw.CloseWithError(errAborted)
	}
	d.sigs = nil
}

// fill turns go-msgauth's verifications into results. They come in the
// order of the signatures in the header, as d.sigs does.
func (d *DKIMStream) fill() {
	if d.err != nil && !errors.Is(d.err, dkim.ErrTooManySignatures) {
		// The verifier stopped on something that is not a verdict about a
		// signature (it could not read the message). Its Verification
		// values are not trustworthy then: go-msgauth clears Err of the
		// one that hit the error, which would read as a pass.
		for i := range d.sigs {
			d.sigs[i].Status, d.sigs[i].Reason = TempError, "verification did not complete: "+strings.TrimPrefix(d.err.Error(), "dkim: ")
		}
		return
	}
	for i := range d.sigs {
		if i >= len(d.verifs) || d.verifs[i] == nil {
			d.sigs[i].Status, d.sigs[i].Reason = TempError, "not verified"
			continue
		}
		d.sigs[i].Status, d.sigs[i].Reason = classifyDKIM(d.verifs[i].Err)
		if d.verifs[i].Domain != "" {
			d.sigs[i].Domain = strings.ToLower(d.verifs[i].Domain)
		}
	}
}

// classifyDKIM maps a go-msgauth verification error to an RFC 8601 DKIM
// result. go-msgauth reports RSA keys under 1024 bits and rsa-sha1 as
// permanent failures; RFC 8301 forbids both, and RFC 8601 §2.7.1 calls a
// signature that is valid but not acceptable to the verifier "policy".
// l= is reported as a failure by go-msgauth ("TODO: technically should be
// policyError") and is policy here too. The messages are go-msgauth
// v0.7.0's; TestDKIMPolicy pins them.
func classifyDKIM(err error) (Status, string) {
	if err == nil {
		return Pass, ""
	}
	reason := strings.TrimPrefix(err.Error(), "dkim: ")
	switch {
	case dkim.IsTempFail(err):
		return TempError, reason
	case strings.HasPrefix(reason, "key is too short"),
		strings.HasPrefix(reason, "hash algorithm too weak"),
		strings.HasPrefix(reason, "message contains an insecure body length tag"):
		return Policy, reason
	case dkim.IsPermFail(err):
		return PermError, reason
	}
	return Fail, reason
}

// parseSignatureTags reads the tags a report needs from a DKIM-Signature
// value. go-msgauth does the real parsing; a tag it rejects makes the
// signature permerror whatever is read here.
func parseSignatureTags(v string) DKIMResult {
	var r DKIMResult
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		val = stripSpace(val)
		switch strings.TrimSpace(k) {
		case "d":
			r.Domain = strings.ToLower(val)
		case "s":
			r.Selector = val
		case "a":
			r.Algorithm = strings.ToLower(val)
		case "i":
			r.Identifier = val
		case "b":
			r.B = val[:min(len(val), bPrefixLen)]
		}
	}
	return r
}

// stripSpace removes folding white space (RFC 6376 §2.8: SP, HTAB, CR,
// LF), byte by byte: a value with bad UTF-8 stays as it is.
func stripSpace(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// writeHeaderValue writes a header value with every bare LF turned into
// CRLF. A line break must be a fold (followed by a space or a tab); one
// that is not would start a new header field in the verifier's eyes, or
// end the header block, and the verifier's list of signatures would no
// longer be the one WriteHeaders counted. MTAs do not pass such values;
// if one does, a space makes the break a fold (the field then fails to
// verify, as it would anywhere).
func writeHeaderValue(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(c)
		if c == '\n' && (i+1 == len(s) || s[i+1] != ' ' && s[i+1] != '\t') {
			b.WriteByte(' ')
		}
	}
}
