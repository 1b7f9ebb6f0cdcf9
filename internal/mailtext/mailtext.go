// Package mailtext holds the small text rules of mail that several parts
// of vouch apply alike: header fields as the MTA hands them over, line
// ends, author addresses and their domains (one rule for signing and
// DMARC), domain-name syntax, and making client-supplied text safe and
// short for logs and replies. It imports no other vouch package.
package mailtext

import (
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// Header is one header field as the MTA handed it over: the name, and the
// value after the colon, byte for byte (Postfix with SMFIP_HDR_LEADSPC:
// leading space kept, continuation lines separated by a bare LF).
type Header struct {
	Name  string
	Value string
}

// CRLF turns bare LF line ends into CRLF in a stream of chunks, also when
// a CR ends one chunk and its LF starts the next. DKIM hashes the message
// as the receiver sees it after SMTP, where every line ends in CRLF.
type CRLF struct {
	lastCR bool
	buf    []byte
}

// Fix returns p with bare LFs turned into CRLF: p itself when it has none
// (the common case: Postfix and Sendmail send CRLF), else a buffer that
// stays valid until the next call.
func (c *CRLF) Fix(p []byte) []byte {
	if len(p) == 0 {
		return p
	}
	bare := false
	prev := c.lastCR
	for _, b := range p {
		if b == '\n' && !prev {
			bare = true
			break
		}
		prev = b == '\r'
	}
	if !bare {
		c.lastCR = p[len(p)-1] == '\r'
		return p
	}
	c.buf = c.buf[:0]
	prev = c.lastCR
	for _, b := range p {
		if b == '\n' && !prev {
			c.buf = append(c.buf, '\r')
		}
		c.buf = append(c.buf, b)
		prev = b == '\r'
	}
	c.lastCR = prev
	return c.buf
}

// Built once: both are safe for concurrent use, and building them cost
// a dozen allocations per message.
var (
	unfold        = strings.NewReplacer("\r\n", " ", "\n", " ")
	addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}}
)

// ParseAddressList returns the addresses of an address-list header value
// (From). Display names in any charset are tolerated; only the addresses
// matter. Broken display names are common in the wild (bad quoting, 8-bit
// bytes): when the value does not parse, the last <...> or a bare address
// is taken.
func ParseAddressList(v string) ([]string, error) {
	if strings.IndexByte(v, '\n') >= 0 {
		v = unfold.Replace(v)
	}
	v = strings.TrimSpace(v)
	list, err := addressParser.ParseList(v)
	if err == nil {
		out := make([]string, len(list))
		for i, a := range list {
			out[i] = a.Address
		}
		return out, nil
	}
	if a := lenientAddress(v); a != "" {
		return []string{a}, nil
	}
	return nil, err
}

func lenientAddress(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			a := strings.TrimSpace(v[i+1 : i+j])
			if strings.Count(a, "@") >= 1 && !strings.ContainsAny(a, " ,<") {
				return a
			}
		}
		return ""
	}
	if strings.Count(v, "@") == 1 && !strings.ContainsAny(v, " ,<>\"") {
		return v
	}
	return ""
}

// ValidDomain reports whether name (no trailing dot) is a syntactically
// valid multi-label domain name: labels of letters, digits, hyphens and
// underscores (real HELO names and DKIM/SPF names carry them), 63 octets
// at most each, no leading or trailing hyphen, 253 in all, and a top-level
// label that is not all digits (so an IP address is not a name). Names
// from headers, HELO and signatures are attacker-controlled: nothing else
// is let through to DNS.
func ValidDomain(name string) bool {
	if len(name) == 0 || len(name) > 253 {
		return false
	}
	// SplitSeq, not Split: no slice of labels per call (this runs for
	// every HELO, sender and author domain).
	labels, last := 0, ""
	for l := range strings.SplitSeq(name, ".") {
		labels, last = labels+1, l
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return labels >= 2 && strings.Trim(last, "0123456789") != ""
}

// Printable reduces text that came from an SMTP client or a message to
// printable ASCII on one line, at most 200 bytes, for log lines, replies
// and headers: every attacker-controlled value that is logged goes
// through it, so that a 100 KB header line cannot become a 100 KB log
// line. A longer text keeps its start and says how long it was.
func Printable(s string) string {
	const max = 200
	n, tail := len(s), ""
	if n > max {
		tail = fmt.Sprintf("...[%d bytes]", n)
		n = max - len(tail)
	}
	b := make([]byte, n, n+len(tail))
	for i := range n {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b[i] = c
	}
	return string(append(b, tail...))
}
