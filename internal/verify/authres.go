package verify

import (
	"strings"
)

// FormatAuthResults builds the value of one Authentication-Results header
// field (RFC 8601): a leading space, the authserv-id, then one result per
// line ("\n\t" folding, as the milter hands folded values to the MTA):
//
//	 mx.example.org;
//		dkim=pass header.d=example.com header.s=sel header.a=rsa-sha256 header.b="AbCd/123+xyz";
//		spf=pass smtp.mailfrom=user@example.com;
//		dmarc=pass (p=reject dis=none) header.from=example.com;
//		iprev=pass policy.iprev=192.0.2.1
//
// Results with an empty Status are left out; with none left the value is
// " ID; none". A message without DKIM signatures gets dkim=none when it
// was verified (SPF or DMARC reported). Property values that are not RFC 2045 tokens
// or plain addresses are quoted (IPv6 addresses, b= with "/" or "=",
// local parts with specials); reasons are quoted, reduced to printable
// ASCII without ";" or parentheses, and cut at 100 characters, so naive
// parsers that split on ";" (go-msgauth's authres.Parse) still work.
//
// go-msgauth's authres.Format is not used: it has no header.s/header.b,
// leaves trailing spaces and gets ARC wrong.
func FormatAuthResults(authservID string, iprev IPRev, r Results) string {
	// RFC 8601 §2.2: authserv-id is a value (token or quoted-string);
	// the local@domain form pvalue allows is not one.
	id := authservID
	if !isToken(id) {
		id = quote(id)
	}
	// One builder for the whole value, not a string per result joined
	// afterwards: the header is written for every inbound message.
	var b arBuilder
	b.Grow(256)
	b.WriteByte(' ')
	b.WriteString(id)
	b.WriteByte(';')
	// dkim=none only when the message was verified (SPF or DMARC ran): an
	// iprev result alone says nothing about DKIM.
	verified := r.SPF.Status != "" || r.DMARC.Status != ""
	if len(r.DKIM) == 0 && verified {
		b.result("dkim", None, "", "")
	}
	for _, d := range r.DKIM {
		b.result("dkim", d.Status, d.Reason, "",
			"header.d", d.Domain, "header.s", d.Selector, "header.a", d.Algorithm, "header.b", d.B)
	}
	if s := r.SPF; s.Status != "" {
		if s.Identity == "helo" {
			b.result("spf", s.Status, spfARReason(s), "", "smtp.helo", s.HELO)
		} else {
			b.result("spf", s.Status, spfARReason(s), "", "smtp.mailfrom", s.Sender)
		}
	}
	if d := r.DMARC; d.Status != "" {
		comment := ""
		if d.Policy != "" {
			comment = "p=" + string(d.Policy) + " dis=" + strings.ToLower(string(d.Disposition))
			if d.Disposition == "" {
				comment = "p=" + string(d.Policy)
			}
		}
		b.result("dmarc", d.Status, d.Reason, comment, "header.from", d.FromDomain)
	}
	if iprev.Result != "" {
		ip := ""
		if iprev.IP.IsValid() {
			ip = iprev.IP.Unmap().String()
		}
		b.result("iprev", iprev.Result, "", "", "policy.iprev", ip)
	}
	if b.results == 0 {
		b.WriteString(" none")
	}
	return b.String()
}

// arBuilder is an Authentication-Results value being written.
type arBuilder struct {
	strings.Builder
	results int
}

// spfARReason: pass and none need no reason in the header.
func spfARReason(s SPFResult) string {
	switch s.Status {
	case Pass, None, Neutral:
		return ""
	}
	return s.Reason
}

// result writes one resinfo on a line of its own: method=result, a
// comment, reason="...", then the properties (pairs of name, value; empty
// values are left out).
func (b *arBuilder) result(method string, st Status, reason, comment string, props ...string) {
	if b.results > 0 {
		b.WriteByte(';')
	}
	b.results++
	b.WriteString("\n\t")
	b.WriteString(method)
	b.WriteByte('=')
	b.WriteString(string(st))
	if reason != "" && st != Pass {
		b.WriteString(" reason=")
		b.WriteString(quote(sanitizeReason(reason)))
	}
	if comment != "" {
		b.WriteString(" (")
		b.WriteString(comment)
		b.WriteByte(')')
	}
	for i := 0; i+1 < len(props); i += 2 {
		if props[i+1] == "" {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(props[i])
		b.WriteByte('=')
		b.WriteString(pvalue(props[i+1]))
	}
}

// sanitizeReason keeps a reason safe inside a quoted-string and for
// parsers that split on ";" or strip comments without honouring quotes.
func sanitizeReason(s string) string {
	const max = 100
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		switch {
		case c == ';':
			c = ','
		case c == '(':
			c = '['
		case c == ')':
			c = ']'
		case c == '"' || c == '\\':
			c = '\''
		case c < 0x20 || c > 0x7e:
			c = ' '
		}
		b.WriteByte(c)
	}
	return strings.TrimSpace(b.String())
}

// pvalue writes an RFC 8601 pvalue: a token or a plain local@domain as
// is, anything else as a quoted-string.
func pvalue(s string) string {
	if isToken(s) || isPlainAddress(s) {
		return s
	}
	return quote(s)
}

// isToken: RFC 2045 token, 1*<any US-ASCII CHAR except SPACE, CTLs, or
// tspecials>.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// isPlainAddress: local-part@domain-name with a dot-atom local part of
// atext (minus "=", "/" and "?", which some parsers take for separators)
// and a domain of letters, digits, hyphens and dots. RFC 8601 §2.2 allows
// these unquoted; anything fancier is quoted.
func isPlainAddress(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(isAlnum(c) || c == '.' || strings.IndexByte("!#$%&'*+-^_`{|}~", c) >= 0) {
			return false
		}
	}
	if domain[0] == '.' || domain[len(domain)-1] == '.' || strings.Contains(domain, "..") {
		return false
	}
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		if !(isAlnum(c) || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// quote makes an RFC 5322 quoted-string; control characters and 8-bit
// bytes become "?" (a header field is 7-bit here).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ClaimsAuthServID reports whether an Authentication-Results value names
// authservID as its authserv-id, in any spelling RFC 8601 §2.2 allows:
// after CFWS (spaces, folding, nested comments), as a token or as a
// quoted-string with quoted-pairs, in any case. A header a sender forged
// with our id must be found however it is written.
func ClaimsAuthServID(value, authservID string) bool {
	id, ok := parseAuthServID(value)
	return ok && strings.EqualFold(id, authservID)
}

// parseAuthServID reads "[CFWS] value" at the start of an
// Authentication-Results value and returns the value unquoted.
func parseAuthServID(v string) (string, bool) {
	i := skipCFWS(v, 0)
	if i >= len(v) {
		return "", false
	}
	if v[i] != '"' {
		start := i
		for i < len(v) && isToken(v[i:i+1]) {
			i++
		}
		return v[start:i], i > start
	}
	var b strings.Builder
	for i++; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			if i++; i == len(v) {
				return "", false
			}
			b.WriteByte(v[i])
		case '"':
			return b.String(), true
		case '\r', '\n':
			// folding inside a quoted-string: CRLF is not part of the value
		default:
			b.WriteByte(c)
		}
	}
	return "", false // unterminated
}

// skipCFWS skips white space, line breaks and comments (which nest and
// may hold quoted-pairs, RFC 5322 §3.2.2) from i on.
func skipCFWS(v string, i int) int {
	depth := 0
	for ; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0, c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			return i
		}
	}
	return i
}
