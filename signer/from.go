package signer

import (
	"fmt"

	"vouch/internal/mailtext"
)

// maxAddress is the longest author address that is signed: RFC 5321
// §4.5.3.1.3 allows 256 octets for a path with its angle brackets, and
// OpenDKIM cuts addresses at 256 (MAXADDRESS). It also bounds the
// signing-table keys built from the address (signingKeys).
const maxAddress = 254

// FromAddress returns the one author address of a message: the single
// From header's single address (RFC 5322 §3.6.2; DKIM needs exactly one
// From to pick a signing domain), its domain as mailtext.AuthorDomain
// returns it. An error says why the message is not signed: no From,
// several, an address without a valid domain, or one longer than
// maxAddress; values in it are truncated (mailtext.Printable).
func FromAddress(headers []mailtext.Header) (local, domain string, err error) {
	authors, fields := mailtext.Authors(headers)
	switch {
	case fields == 0:
		return "", "", mailtext.ErrNoAuthor
	case fields > 1:
		return "", "", fmt.Errorf("%d From headers", fields)
	case len(authors) != 1:
		return "", "", fmt.Errorf("From has %d addresses", len(authors))
	case authors[0].Err != nil:
		return "", "", authors[0].Err
	}
	a := authors[0]
	if n := len(a.Local) + 1 + len(a.Domain); n > maxAddress {
		return "", "", fmt.Errorf("From address %q is %d octets long (at most %d)", mailtext.Printable(a.Local+"@"+a.Domain), n, maxAddress)
	}
	return a.Local, a.Domain, nil
}
