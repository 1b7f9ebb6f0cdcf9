// Package submit hands a message to the local MTA over plain SMTP: the
// mail vouch itself writes (hijack notifications, DMARC aggregate reports).
//
// net/smtp's SendMail is not used: it starts TLS whenever the server offers
// it and would then fail on the local MTA's self-signed certificate (and
// TLS adds nothing on loopback). No AUTH either: the local MTA relays for
// loopback.
package submit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"time"
)

// Timeout bounds one submission: connect, dialogue and data.
const Timeout = 30 * time.Second

// Error is a submission that failed. Temporary says trying again later may
// work: a 4xx reply, or trouble reaching or talking to the MTA. A 5xx
// reply is permanent.
type Error struct {
	Temporary bool
	Code      int // the SMTP reply code, 0 when the MTA gave none
	Err       error
}

func (e *Error) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	return fmt.Sprintf("smtp submission (%s): %v", kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsTemporary reports whether err says to try again later. Errors that
// are not an *Error (a canceled context) are temporary too: nothing says
// the message cannot be sent.
func IsTemporary(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary
	}
	return err != nil
}

// classify turns what net/smtp returned into an *Error.
func classify(err error) *Error {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return &Error{Temporary: tp.Code < 500, Code: tp.Code, Err: err}
	}
	return &Error{Temporary: true, Err: err}
}

// Send delivers msg (CRLF lines) from one envelope sender to the
// recipients in one transaction. A recipient refused with 5xx is left out
// and returned in refused; a 4xx for any recipient ends the transaction
// before DATA, so that a retry cannot deliver twice to the others. err is
// nil when the MTA took the message for at least one recipient.
func Send(ctx context.Context, addr, helo, from string, to []string, msg []byte) (refused []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, classify(err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// A context canceled mid-dialogue (the daemon stopping) ends it now.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return nil, classify(err)
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return nil, classify(err)
	}
	if err := c.Mail(from); err != nil {
		return nil, classify(err)
	}
	var lastRefusal error
	for _, rcpt := range to {
		err := c.Rcpt(rcpt)
		if err == nil {
			continue
		}
		if e := classify(err); e.Temporary {
			c.Reset()
			return nil, e
		}
		refused, lastRefusal = append(refused, rcpt), err
	}
	if len(refused) == len(to) {
		if lastRefusal == nil {
			lastRefusal = errors.New("no recipient")
		}
		return refused, &Error{Err: lastRefusal, Code: replyCode(lastRefusal)}
	}
	w, err := c.Data()
	if err != nil {
		return nil, classify(err)
	}
	if _, err := w.Write(msg); err != nil {
		return nil, classify(err)
	}
	if err := w.Close(); err != nil {
		return nil, classify(err)
	}
	c.Quit() // the message is queued: a failing QUIT changes nothing
	return refused, nil
}

func replyCode(err error) int {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code
	}
	return 0
}
