package mailtext

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Author is one address of a message's From fields (RFC 5322 §3.6.2):
// the author whose domain DKIM signs for and DMARC evaluates.
type Author struct {
	Local  string // the local part as written
	Domain string // as AuthorDomain returns it; "" when Err is set
	// Err says why this address has no usable domain: a From field that
	// does not parse, an address without a domain, or a domain that
	// AuthorDomain refuses. Values in it are truncated (Printable).
	Err error
}

// Authors returns the addresses of every From field of a header block, in
// order, and how many From fields there are. Signing wants exactly one
// field with one address; DMARC evaluates each domain. A field that does
// not parse is one Author with Err set, so that no problem is dropped.
//
// The work is linear in the size of the fields; callers that act per
// domain (DNS lookups) bound the number they act on.
func Authors(headers []Header) (authors []Author, fields int) {
	for _, h := range headers {
		if !strings.EqualFold(strings.TrimSpace(h.Name), "From") {
			continue
		}
		fields++
		addrs, err := ParseAddressList(h.Value)
		if err != nil {
			authors = append(authors, Author{Err: fmt.Errorf("cannot parse From %q: %s", Printable(h.Value), Printable(err.Error()))})
			continue
		}
		for _, a := range addrs {
			authors = append(authors, author(a))
		}
	}
	return authors, fields
}

func author(addr string) Author {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return Author{Err: fmt.Errorf("From address %q has no domain", Printable(addr))}
	}
	d, err := AuthorDomain(addr[at+1:])
	if err != nil {
		return Author{Local: addr[:at], Err: err}
	}
	return Author{Local: addr[:at], Domain: d}
}

// AuthorDomain returns the domain of an author address in the form that
// key tables, d= and DNS use, or an error saying why it has none:
//
//   - one trailing dot is dropped (a fully qualified name as written);
//   - IDNA: U-labels become A-labels, upper case becomes lower case
//     (UTS #46 lookup profile, RFC 5891 §5), and labels that IDNA
//     forbids ("xn--" that is not Punycode, "--" in positions 3-4) fail;
//   - RFC 5321 §4.1.2 syntax: labels of letters, digits and hyphens (STD3
//     rules: no "_", "/", "%" or space), none empty, none starting or
//     ending with a hyphen, at most 63 octets each and 253 in all (RFC
//     1035 §2.3.4), at least two labels, and a top-level label that is
//     not all digits (ValidDomain).
//
// A result always passes ValidDomain and is its own AuthorDomain. The
// name is attacker-controlled: it ends up in file paths (KeyTable "%"),
// in signatures and in DNS queries, so nothing else gets through.
func AuthorDomain(d string) (string, error) {
	raw := d
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("From domain %q %s", Printable(raw), why)
	}
	// U-labels take at most 4 octets per character and never encode
	// shorter than 1: anything longer cannot become a 253-octet name, and
	// is refused before IDNA spends time on it.
	if len(d) > 4*maxDomain {
		return bad(fmt.Sprintf("is %d octets long (at most %d)", len(d), maxDomain))
	}
	if !utf8.ValidString(d) {
		// IDNA would read the bad bytes as U+FFFD and encode that.
		return bad("is not valid UTF-8")
	}
	d = strings.TrimSuffix(d, ".")
	d, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return bad("is not a valid domain name (" + Printable(strings.TrimPrefix(err.Error(), "idna: ")) + ")")
	}
	switch {
	case len(d) > maxDomain:
		return bad(fmt.Sprintf("is %d octets long in ASCII (at most %d)", len(d), maxDomain))
	case !ValidDomain(d):
		return bad("is not a valid domain name (RFC 5321: at least two labels of letters, digits and hyphens, 63 octets at most each)")
	}
	return d, nil
}

// maxDomain is the longest domain name in text form (RFC 1035 §2.3.4: 255
// octets on the wire).
const maxDomain = 253

// ErrNoAuthor means a message has no From field.
var ErrNoAuthor = errors.New("no From header")
