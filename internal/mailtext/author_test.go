package mailtext

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func hdrs(lines ...string) []Header {
	var hs []Header
	for _, l := range lines {
		n, v, _ := strings.Cut(l, ":")
		hs = append(hs, Header{Name: n, Value: v})
	}
	return hs
}

// TestAuthors: the From cases of RFC 7489 §6.6.1 and RFC 5322 §3.6.2
// (the former verify.FromDomains cases), and the hostile ones of issue 12.
func TestAuthors(t *testing.T) {
	long := strings.Repeat("a.", 20000) + "example" // 40 KB: 40,004 signing-table keys before the check
	cases := []struct {
		headers []Header
		fields  int
		want    string // "local@domain" per author, "!error text" for an Err, comma-separated
	}{
		{hdrs("From: Alice <alice@Example.COM>"), 1, "alice@example.com"},
		{hdrs("From: alice@example.com"), 1, "alice@example.com"},
		{hdrs("from:  \"Smith, A\" <a@example.com>"), 1, "a@example.com"},
		{hdrs("From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>"), 1, "j@example.com"},
		{hdrs("From: a@example.com, b@example.com"), 1, "a@example.com,b@example.com"},
		{hdrs("From: a@example.com, b@example.net"), 1, "a@example.com,b@example.net"},
		{hdrs("From: a@example.com", "Subject: x", "From: b@example.org"), 2, "a@example.com,b@example.org"},
		{hdrs("From: Broken \"quote <a@example.com>"), 1, "a@example.com"},
		{hdrs("From: a@bücher.example"), 1, "a@xn--bcher-kva.example"},
		{hdrs("From: a@XN--BCHER-KVA.example"), 1, "a@xn--bcher-kva.example"},
		{hdrs("From: <a@example.com.>"), 1, "a@example.com"},
		{hdrs("From: friends: a@example.com, b@example.org;"), 1, "a@example.com,b@example.org"},
		{hdrs("Subject: no from"), 0, ""},
		{hdrs("From: undisclosed-recipients:;"), 1, ""},
		{hdrs("From: not an address"), 1, "!cannot parse From"},
		{hdrs("From: a@[192.0.2.1]"), 1, "!not a valid domain"},
		{hdrs("From: a@localhost"), 1, "!not a valid domain"},
		{hdrs("From: <alice@>"), 1, "!has no domain"},
		// Issue 12: these reached KeyTable "%" paths and d=.
		{hdrs("From: <a@../planted/x>"), 1, "!not a valid domain"},
		{hdrs("From: <a@../../../../somewhere/x>"), 1, "!not a valid domain"},
		{hdrs("From: <a@example.com/../../x>"), 1, "!not a valid domain"},
		{hdrs("From: <a@%.example.com>"), 1, "!not a valid domain"},
		{hdrs("From: <a@a..example.com>"), 1, "!not a valid domain"},
		{hdrs("From: <a@exa_mple.com>"), 1, "!not a valid domain"},
		{hdrs("From: <a@-a.example.com>"), 1, "!not a valid domain"},
		{hdrs("From: <a@" + strings.Repeat("a", 64) + ".com>"), 1, "!not a valid domain"},
		{hdrs("From: <a@" + long + ">"), 1, "!octets long"},
		{hdrs("From: a@example.com, b@localhost"), 1, "a@example.com,!not a valid domain"},
	}
	for _, tc := range cases {
		got, fields := Authors(tc.headers)
		var parts []string
		ok := fields == tc.fields
		for _, a := range got {
			if a.Err != nil {
				parts = append(parts, "!"+a.Err.Error())
				ok = ok && a.Domain == "" && len(a.Err.Error()) < 1000
				continue
			}
			parts = append(parts, a.Local+"@"+a.Domain)
		}
		wants := strings.Split(tc.want, ",")
		if tc.want == "" {
			wants = nil
		}
		ok = ok && len(parts) == len(wants)
		for i := 0; ok && i < len(wants); i++ {
			if strings.HasPrefix(wants[i], "!") {
				ok = strings.HasPrefix(parts[i], "!") && strings.Contains(parts[i], wants[i][1:])
			} else {
				ok = parts[i] == wants[i]
			}
		}
		if !ok {
			t.Errorf("%.80q: got %d fields, %.300q; want %d, %q", fmt.Sprint(tc.headers), fields, parts, tc.fields, tc.want)
		}
	}
}

func TestAuthorDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.com": "example.com", "Mail.Example.COM.": "mail.example.com", "bücher.example": "xn--bcher-kva.example",
		"例え.テスト": "xn--r8jz45g.xn--zckzah", "a\u3002example.com": "a.example.com",
		strings.Repeat("a", 63) + ".com":  strings.Repeat("a", 63) + ".com",
		strings.Repeat("a.", 126) + "com": strings.Repeat("a.", 126) + "com", // 255 octets: too long
		"":                                "", ".": "", "example.com..": "", "../x": "", "a/b.com": "", "a b.com": "", "xn--zz.example": "",
		"ab--cd.example": "", "1.2.3.4": "", "example": "", "a_b.example": "", "a%b.example": "",
	} {
		if len(want) > maxDomain {
			want = ""
		}
		got, err := AuthorDomain(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("AuthorDomain(%.40q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// FuzzAuthors: whatever a From field holds, an author domain that comes
// out passes ValidDomain, is lower-case ASCII, is its own AuthorDomain,
// and an error stays short enough for a log line (values in it are Printable,
// at most 200 bytes before quoting).
func FuzzAuthors(f *testing.F) {
	for _, s := range []string{
		" Alice <alice@example.com>", " a@bücher.example", " <a@../planted/x>", " <a@../../../../somewhere/x>",
		" a@example.com, b@example.org", " team: a@Example.COM.;", " \"q@x\" <a@[192.0.2.1]>", " =?utf-8?q?x?= <a@xn--bcher-kva.example>",
		" <a@" + strings.Repeat("a.", 300) + "com>", " a@\u3002.com", " a@xn--zz.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		authors, fields := Authors([]Header{{Name: "From", Value: v}, {Name: "Subject", Value: v}})
		if fields != 1 {
			t.Fatalf("%d fields", fields)
		}
		for _, a := range authors {
			if a.Err != nil {
				if a.Domain != "" || len(a.Err.Error()) > 1000 || !utf8.ValidString(a.Err.Error()) {
					t.Fatalf("%q: error with domain %q or too long: %q", v, a.Domain, a.Err)
				}
				continue
			}
			d := a.Domain
			if !ValidDomain(d) || d != strings.ToLower(d) || strings.ContainsAny(d, "/%\\ ") {
				t.Fatalf("%q: domain %q does not pass the domain check", v, d)
			}
			if again, err := AuthorDomain(d); again != d || err != nil {
				t.Fatalf("%q: AuthorDomain(%q) = %q, %v", v, d, again, err)
			}
		}
	})
}
