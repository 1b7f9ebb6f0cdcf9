package signer

import (
	"strings"
	"testing"

	"vouch/internal/mailtext"
)

func TestFromAddress(t *testing.T) {
	from := func(v string) []mailtext.Header {
		return []mailtext.Header{{Name: "Received", Value: " from x"}, {Name: "From", Value: v}, {Name: "To", Value: " b@remote.test"}}
	}
	tests := []struct {
		name          string
		headers       []mailtext.Header
		local, domain string
		err           string
	}{
		{"bare address", from(" alice@example.com"), "alice", "example.com", ""},
		{"no space after the colon", from("alice@example.com"), "alice", "example.com", ""},
		{"angle address", from(" <alice@example.com>"), "alice", "example.com", ""},
		{"display name", from(" Alice Example <alice@example.com>"), "alice", "example.com", ""},
		{"quoted display name with comma and at", from(` "Example, Alice (alice@evil.test)" <alice@example.com>`), "alice", "example.com", ""},
		{"domain lower-cased, local part kept", from(" Alice.Smith@Example.COM"), "Alice.Smith", "example.com", ""},
		{"utf-8 encoded word", from(" =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.com>"), "juergen", "example.com", ""},
		{"base64 encoded word", from(" =?UTF-8?B?R3LDvMOfZQ==?= <g@example.com>"), "g", "example.com", ""},
		{"latin-1 encoded word", from(" =?iso-8859-1?q?J=FCrgen?= <j@example.com>"), "j", "example.com", ""},
		{"unknown charset", from(" =?x-unknown?q?=FF=FE?= <u@example.com>"), "u", "example.com", ""},
		{"unknown charset base64", from(" =?windows-31j?b?gqCCog==?= <w@example.com>"), "w", "example.com", ""},
		{"raw 8-bit display name", from(" Jürgen Müller <juergen@example.com>"), "juergen", "example.com", ""},
		{"comment", from(" alice@example.com (Alice)"), "alice", "example.com", ""},
		{"folded", from(" Alice Example\n <alice@example.com>"), "alice", "example.com", ""},
		{"folded with CRLF and tab", from(" \"Alice\r\n\tExample\" <alice@example.com>"), "alice", "example.com", ""},
		{"trailing dot domain kept as is", from(" a@mail.example.com"), "a", "mail.example.com", ""},
		{"group with one member", from(" Team: alice@example.com;"), "alice", "example.com", ""},
		{"empty group", from(" undisclosed-recipients:;"), "", "", "From has 0 addresses"},
		{"group with two members", from(" Team: a@example.com, b@example.com;"), "", "", "From has 2 addresses"},
		{"two addresses", from(" a@example.com, b@example.org"), "", "", "From has 2 addresses"},
		{"two From headers", append(from(" a@example.com"), mailtext.Header{Name: "from", Value: " b@example.com"}), "", "", "2 From headers"},
		{"no From", []mailtext.Header{{Name: "Subject", Value: " x"}, {Name: "Sender", Value: " s@example.com"}}, "", "", "no From header"},
		{"From name any case", []mailtext.Header{{Name: "FROM", Value: " a@example.com"}}, "a", "example.com", ""},
		{"unclosed quote", from(` "Unclosed <alice@example.com>`), "alice", "example.com", ""},
		{"unbalanced quotes around name", from(` Alice "the" "Boss <boss@example.com>`), "boss", "example.com", ""},
		{"broken name, last angle address wins", from(` "a@evil.test" <x <alice@example.com>`), "alice", "example.com", ""},
		{"stray quote in bare address", from(` "alice@example.com`), "", "", "cannot parse From"},
		{"no domain", from(" alice"), "", "", ""},
		{"at without domain", from(" <alice@>"), "", "", ""},
		{"empty", from(""), "", "", ""},
		{"only spaces", from("   \n  "), "", "", ""},
		{"IDN in A-labels", from(" a@Bücher.Example"), "a", "xn--bcher-kva.example", ""},
		{"trailing dot dropped", from(" <a@example.com.>"), "a", "example.com", ""},
		// Issue 12: these became d= and KeyTable "%" paths.
		{"path in domain", from(" <a@../planted/x>"), "", "", "not a valid domain name"},
		{"path outside", from(" <a@../../../../somewhere/x>"), "", "", "not a valid domain name"},
		{"percent", from(" <a@%.example.com>"), "", "", "not a valid domain name"},
		{"underscore", from(" a@a_b.example.com"), "", "", "not a valid domain name"},
		{"single label", from(" a@localhost"), "", "", "not a valid domain name"},
		{"address literal", from(" a@[192.0.2.1]"), "", "", "not a valid domain name"},
		{"40 KB domain", from(" <a@" + strings.Repeat("a.", 20000) + "com>"), "", "", "octets long"},
		{"label of 64", from(" a@" + strings.Repeat("b", 64) + ".com"), "", "", "not a valid domain name"},
		{"address of 255 octets", from(" " + strings.Repeat("l", 243) + "@example.com"), "", "", "octets long (at most 254)"},
		{"address of 254 octets", from(" " + strings.Repeat("l", 242) + "@example.com"), strings.Repeat("l", 242), "example.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			local, domain, err := FromAddress(tc.headers)
			if tc.local == "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || len(err.Error()) > 1000 {
					t.Fatalf("got %q@%q, %v; want an error containing %q", local, domain, err, tc.err)
				}
				return
			}
			if err != nil || local != tc.local || domain != tc.domain {
				t.Fatalf("got %q@%q, %v; want %q@%q", local, domain, err, tc.local, tc.domain)
			}
		})
	}
}
