// Package smtpreply is the one type for the SMTP replies vouch sends
// through the MTA: a basic code (RFC 5321), an enhanced status code (RFC
// 3463) and a text. The enhanced code's class is never stored: it is
// derived from the basic code when the reply is written, so a 4xx can
// never go out with a 5.x.x code (Postfix replaces such replies with a
// generic one, and maddy shipped exactly that bug). policy, hijack and
// milter all speak this type; what a reply says is decided by them.
package smtpreply

import "fmt"

// Reply is an SMTP reply. Enhanced holds the subject and detail of the
// enhanced status code ("7.25"); the class comes from Code.
type Reply struct {
	Code     int
	Enhanced string
	Text     string
}

// EnhancedCode is the full RFC 3463 code, e.g. "5.7.25".
func (r Reply) EnhancedCode() string {
	return fmt.Sprintf("%d.%s", r.Code/100, r.Enhanced)
}

// Reason is the reply without the basic code, as the milter library wants it.
func (r Reply) Reason() string { return r.EnhancedCode() + " " + r.Text }

func (r Reply) String() string { return fmt.Sprintf("%d %s", r.Code, r.Reason()) }

// Temporary reports whether the reply is a 4xx.
func (r Reply) Temporary() bool { return r.Code/100 == 4 }

// Softened is the temporary reply matching a permanent one: 550 5.7.25
// becomes 450 4.7.25, and 521 (reject and close, RFC 7504) becomes 421.
// A temporary reply is returned as it is.
func (r Reply) Softened() Reply {
	switch {
	case r.Code == 521:
		r.Code = 421
	case r.Code/100 == 5:
		r.Code = 450
	}
	return r
}
