package signer

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// FromAddress returns the one author address of a message: the single
// From header's single address (RFC 5322 §3.6.2; DKIM needs exactly one
// From to pick a signing domain). Display names in any charset are
// tolerated; only the address matters.
func FromAddress(headers []Header) (local, domain string, err error) {
	var values []string
	for _, h := range headers {
		if strings.EqualFold(h.Name, "From") {
			values = append(values, h.Value)
		}
	}
	switch len(values) {
	case 0:
		return "", "", errors.New("no From header")
	case 1:
	default:
		return "", "", fmt.Errorf("%d From headers", len(values))
	}
	v := strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ").Replace(values[0]))
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}}
	addrs, perr := p.ParseList(v)
	var addr string
	switch {
	case perr == nil && len(addrs) == 1:
		addr = addrs[0].Address
	case perr == nil:
		return "", "", fmt.Errorf("From has %d addresses", len(addrs))
	default:
		// Broken display names are common in the wild (bad quoting,
		// 8-bit bytes); fall back to the last <...> or a bare address.
		addr = lenientAddress(v)
		if addr == "" {
			return "", "", fmt.Errorf("cannot parse From %q: %v", v, perr)
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", fmt.Errorf("From address %q has no domain", addr)
	}
	return addr[:at], strings.ToLower(addr[at+1:]), nil
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
