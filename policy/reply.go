package policy

import (
	"fmt"
	"strings"

	"vouch/internal/mailtext"
)

// Reply is an SMTP reply. Enhanced holds the subject and detail of the
// enhanced status code ("7.25"); the class is always derived from Code, so
// a 4xx can never go out with a 5.x.x code (Postfix replaces such replies).
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

// soften turns a permanent reply into the matching temporary one:
// 550 5.7.25 becomes 450 4.7.25, 521 becomes 421.
func (r Reply) soften() Reply {
	switch {
	case r.Code == 521:
		r.Code = 421
	case r.Code/100 == 5:
		r.Code = 450
	}
	return r
}

// expand fills the placeholders of a reply text. Every value may come from
// the SMTP client, so it is reduced to printable ASCII on one line.
func expand(text string, check Check, in Input) string {
	domain := ""
	if i := strings.LastIndexByte(in.Sender, '@'); i >= 0 {
		domain = in.Sender[i+1:]
	}
	r := strings.NewReplacer(
		"%ip%", in.IP.String(),
		"%helo%", mailtext.Printable(in.HELO),
		"%sender%", mailtext.Printable(in.Sender),
		"%domain%", mailtext.Printable(domain),
		"%check%", checkNames[check],
	)
	return mailtext.Printable(r.Replace(text))
}

var checkNames = map[Check]string{PTR: "reverse DNS", HELO: "HELO name", Mail: "sender domain"}
