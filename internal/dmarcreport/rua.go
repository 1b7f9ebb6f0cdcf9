package dmarcreport

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"vouch/internal/mailtext"
)

// RUA is one rua= destination (RFC 7489 §6.4, §7.1): a mailto address
// and the largest report it takes.
type RUA struct {
	Address string // local@domain, percent-decoded, domain in lower case
	MaxSize int64  // bytes; 0 means no limit
}

// Domain is the part of the address after the @.
func (u RUA) Domain() string { return u.Address[strings.LastIndexByte(u.Address, '@')+1:] }

// String is u as a mailto URI that ParseRUA reads back as u.
func (u RUA) String() string {
	at := strings.LastIndexByte(u.Address, '@')
	s := "mailto:" + escapeLocal(u.Address[:at]) + u.Address[at:]
	if u.MaxSize > 0 {
		s += "!" + strconv.FormatInt(u.MaxSize, 10)
	}
	return s
}

// escapeLocal percent-encodes every byte of a local part that is not
// plainly safe in a URI, "!" (the size separator) and "," (the URI
// separator) among them (RFC 7489 §6.4).
func escapeLocal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+=", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// SkippedRUA is a rua= URI that is not used, and why.
type SkippedRUA struct {
	URI    string
	Reason string
}

// ParseRUAs reads a record's rua= URIs as recorded (one per string; a
// string holding several, comma-separated, is split). The mailto URIs
// that can be used come back in order, without duplicates; the others are
// in skipped with the reason, for the log.
func ParseRUAs(uris []string) (rua []RUA, skipped []SkippedRUA) {
	seen := map[string]bool{}
	for _, s := range uris {
		for part := range strings.SplitSeq(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			u, err := ParseRUA(part)
			if err != nil {
				skipped = append(skipped, SkippedRUA{URI: part, Reason: err.Error()})
				continue
			}
			if k := strings.ToLower(u.Address); !seen[k] {
				seen[k] = true
				rua = append(rua, u)
			}
		}
	}
	return rua, skipped
}

var errNotMailto = errors.New("not a mailto: URI (only mailto is supported)")

// ParseRUA reads one rua= URI: mailto:ADDRESS[!SIZE], where ADDRESS is
// percent-encoded and SIZE is a number of bytes with an optional unit k,
// m, g or t (powers of 1024, RFC 7489 §6.4). RFC 6068 header fields
// ("?subject=...") are ignored.
func ParseRUA(s string) (RUA, error) {
	const scheme = "mailto:"
	if len(s) < len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return RUA{}, errNotMailto
	}
	s = s[len(scheme):]
	var u RUA
	if i := strings.LastIndexByte(s, '!'); i >= 0 {
		size, err := parseSize(s[i+1:])
		if err != nil {
			return RUA{}, err
		}
		s, u.MaxSize = s[:i], size
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	addr, err := url.PathUnescape(s)
	if err != nil {
		return RUA{}, fmt.Errorf("bad percent-encoding: %w", err)
	}
	local, domain, ok := strings.Cut(addr, "@")
	switch {
	case !ok || strings.Contains(domain, "@"):
		return RUA{}, errors.New("the address needs exactly one @")
	case !validLocal(local):
		return RUA{}, fmt.Errorf("bad local part %q", local)
	}
	domain = strings.ToLower(domain)
	if !mailtext.ValidDomain(domain) {
		return RUA{}, fmt.Errorf("bad domain %q", domain)
	}
	u.Address = local + "@" + domain
	return u, nil
}

// validLocal accepts a dot-atom local part (RFC 5322 atext and dots, at
// most 64 octets): nothing that could end an SMTP command or a header.
func validLocal(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0) {
			return false
		}
	}
	return true
}

// parseSize reads SIZE of "!SIZE": digits and an optional unit.
func parseSize(s string) (int64, error) {
	shift := 0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift > 0 {
			s = s[:n-1]
		}
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad size limit %q", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size limit %q too large", s)
	}
	if n == 0 {
		return 0, errors.New("size limit 0")
	}
	return n << shift, nil
}
