package policy

import (
	"strings"

	"vouch/internal/mailtext"
)

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
