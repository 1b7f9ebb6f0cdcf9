package signer

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// FuzzParseLDAPURL: a URL that parses is rendered back from its pieces
// (every piece percent-encoded) and must parse to the very same pieces:
// nothing the parser keeps is lost or changed by its own escaping rules.
// The server must be one vouch can dial: a host name or address and a
// port number, or for ldapi:// a socket path.
func FuzzParseLDAPURL(f *testing.F) {
	for _, u := range []string{
		zimbraST, zimbraKT,
		"ldap://192.0.2.1/ou=people,dc=example,dc=com?DKIMSelector,DKIMIdentity?sub?(DKIMIdentity=$d)",
		"LDAPS://ldap.example.com:1636/o=x?a??",
		"ldap://[2001:db8::1]/?a?ONE",
		"ldapi://%2Fopt%2Fzimbra%2Fdata%2Fldap%2Fstate%2Frun%2Fldapi/?a?subtree?(x=$d)",
		"ldap://h/ou=a%20b,o=x?a%2Cb?children?(cn=a%3Fb)",
		"ldap://h/?a,,b,?subord?(x=$d)?ext=1",
		"ldap://a%5Db:389/?a",
		"ldap://h:0/?a",
		"ldap://h:+389/?a",
	} {
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, u string) {
		p, err := parseLDAPURL(u)
		if err != nil {
			return
		}
		if p.server.scheme != "ldapi" {
			host, port := p.server.host(), p.server.addr[strings.LastIndexByte(p.server.addr, ':')+1:]
			if err := checkHostPort(host, port); err != nil {
				t.Fatalf("%q parsed to server %q: %v", u, p.server.addr, err)
			}
		}
		again := renderLDAPURL(p)
		q, err := parseLDAPURL(again)
		if err != nil {
			t.Fatalf("%q parsed to %+v, rendered as %q, which does not parse: %v", u, p, again, err)
		}
		if q.server != p.server || q.base != p.base || !slices.Equal(q.attrs, p.attrs) || q.scope != p.scope || q.filter != p.filter {
			t.Fatalf("%q parsed to\n%+v\nrendered as %q, which parses to\n%+v", u, p, again, q)
		}
	})
}

// renderLDAPURL writes the pieces as an RFC 4516 URL, percent-encoding
// every byte that is not a letter, a digit or one of "-._=()$".
func renderLDAPURL(p parsedLDAPURL) string {
	enc := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._=()$", c) >= 0 {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	server := p.server.addr
	if p.server.scheme == "ldapi" {
		server = enc(server)
	} else {
		server = strings.ReplaceAll(server, "%", "%25") // the parser unescapes the host
	}
	attrs := make([]string, len(p.attrs))
	for i, a := range p.attrs {
		attrs[i] = enc(a)
	}
	scope := map[int]string{ldap.ScopeBaseObject: "base", ldap.ScopeSingleLevel: "one", ldap.ScopeWholeSubtree: "sub", ldap.ScopeChildren: "children"}[p.scope]
	return p.server.scheme + "://" + server + "/" + enc(p.base) + "?" + strings.Join(attrs, ",") + "?" + scope + "?" + enc(p.filter)
}
