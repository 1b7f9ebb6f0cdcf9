package signer

import (
	"errors"
	"fmt"
	"strings"

	"vouch/internal/mailtext"
)

// FromAddress returns the one author address of a message: the single
// From header's single address (RFC 5322 §3.6.2; DKIM needs exactly one
// From to pick a signing domain). Display names in any charset are
// tolerated; only the address matters (mailtext.ParseAddressList).
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
	addrs, err := mailtext.ParseAddressList(values[0])
	if err != nil {
		return "", "", fmt.Errorf("cannot parse From %q: %v", mailtext.Printable(values[0]), err)
	}
	if len(addrs) != 1 {
		return "", "", fmt.Errorf("From has %d addresses", len(addrs))
	}
	addr := addrs[0]
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", fmt.Errorf("From address %q has no domain", addr)
	}
	return addr[:at], strings.ToLower(addr[at+1:]), nil
}
