package signer

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// ldapDataset is an OpenDKIM LDAP data set (opendkim-db.c,
// DKIMF_DB_TYPE_LDAP): one or more URLs separated by spaces or tabs,
//
//	ldap://host[:port]/basedn[?attrs[?scope[?filter[?exts]]]]
//
// The first URL gives the base DN, the attributes (in the order of the
// fields they fill), the scope and the filter; every URL, the first
// included, contributes only its scheme, host and port to the list of
// servers tried in turn.
type ldapDataset struct {
	spec    string
	servers []ldapServer
	base    string   // template: $d and $D are replaced per query
	attrs   []string // in field order
	scope   int      // ldap.Scope*
	filter  string   // template; never empty
}

// ldapServer is where one URL points: "ldap", "ldaps" or "ldapi" and the
// host:port (for ldapi, the socket path).
type ldapServer struct {
	scheme, addr string
}

func (s ldapServer) String() string {
	if s.scheme == "ldapi" {
		return "ldapi://" + url.PathEscape(s.addr)
	}
	return s.scheme + "://" + s.addr
}

// host is the server's name for TLS certificate checks.
func (s ldapServer) host() string {
	h, _, err := net.SplitHostPort(s.addr)
	if err != nil {
		return s.addr
	}
	return h
}

// isLDAPSpec reports whether a table setting is an LDAP data set.
func isLDAPSpec(spec string) bool {
	l := strings.ToLower(strings.TrimSpace(spec))
	return strings.HasPrefix(l, "ldap://") || strings.HasPrefix(l, "ldaps://") || strings.HasPrefix(l, "ldapi://")
}

// parseLDAPDataset parses a space-separated list of LDAP URLs. minAttrs is
// the number of attributes the table needs (1 for a signing table: the key
// name, optionally followed by the identity; 3 for a key table: domain,
// selector, key). Warnings name the parts of further URLs that OpenDKIM,
// and therefore vouch, ignores.
func parseLDAPDataset(spec string, minAttrs int) (*ldapDataset, []string, error) {
	urls := strings.Fields(spec)
	if len(urls) == 0 {
		return nil, nil, fmt.Errorf("empty LDAP data set")
	}
	ds := &ldapDataset{spec: spec}
	var warnings []string
	for i, u := range urls {
		p, err := parseLDAPURL(u)
		if err != nil {
			return nil, nil, fmt.Errorf("LDAP URL %d %q: %w", i+1, redactURL(u), err)
		}
		ds.servers = append(ds.servers, p.server)
		if i == 0 {
			ds.base, ds.attrs, ds.scope, ds.filter = p.base, p.attrs, p.scope, p.filter
			continue
		}
		if p.base != ds.base || strings.Join(p.attrs, ",") != strings.Join(ds.attrs, ",") || p.scope != ds.scope || p.filter != ds.filter {
			warnings = append(warnings, fmt.Sprintf("LDAP URL %d %q: only its server is used (a failover for the first URL); its base DN, attributes, scope and filter are ignored, as OpenDKIM ignores them", i+1, redactURL(u)))
		}
	}
	if len(ds.attrs) < minAttrs {
		what := "the key name (and optionally the identity)"
		if minAttrs > 1 {
			what = "domain, selector and key, in this order"
		}
		return nil, nil, fmt.Errorf("LDAP URL %q names %d attribute(s): it must name %s", redactURL(urls[0]), len(ds.attrs), what)
	}
	// The filter must compile whatever $d becomes.
	if _, err := ldap.CompileFilter(expandLDAP(ds.filter, "example.com", false)); err != nil {
		return nil, nil, fmt.Errorf("LDAP URL %q: filter %q: %v", redactURL(urls[0]), ds.filter, err)
	}
	return ds, warnings, nil
}

type parsedLDAPURL struct {
	server ldapServer
	base   string
	attrs  []string
	scope  int
	filter string
}

// parseLDAPURL parses one RFC 4516 URL the way OpenLDAP's ldap_url_parse
// reads it for OpenDKIM: the default scope is base, empty attribute names
// are skipped ("a,b,c," is three), a missing filter is (objectClass=*),
// and a filter without parentheses gets them.
func parseLDAPURL(u string) (parsedLDAPURL, error) {
	var p parsedLDAPURL
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return p, fmt.Errorf("not an LDAP URL (want ldap://, ldaps:// or ldapi://)")
	}
	p.server.scheme = strings.ToLower(scheme)
	hostport, path, _ := strings.Cut(rest, "/")
	if strings.ContainsAny(hostport, "?#") {
		return p, fmt.Errorf("a \"/\" must separate the host from the base DN")
	}
	host, err := url.PathUnescape(hostport)
	if err != nil {
		return p, fmt.Errorf("host: %v", err)
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		return p, fmt.Errorf("credentials in the URL are not supported: use signing.ldap_bind_dn and ldap_bind_password")
	}
	switch p.server.scheme {
	case "ldap", "ldaps":
		if host == "" {
			return p, fmt.Errorf("no host (write ldap://HOST:PORT/...)")
		}
		port := "389"
		if p.server.scheme == "ldaps" {
			port = "636"
		}
		if h, pt, err := net.SplitHostPort(host); err == nil {
			if h == "" {
				return p, fmt.Errorf("no host (write ldap://HOST:PORT/...)")
			}
			host, port = h, pt
		} else {
			host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		}
		if err := checkHostPort(host, port); err != nil {
			return p, err
		}
		p.server.addr = net.JoinHostPort(host, port)
	case "ldapi":
		if host == "" {
			host = "/var/run/slapd/ldapi"
		}
		p.server.addr = host
	default:
		return p, fmt.Errorf("scheme %q is not ldap, ldaps or ldapi", scheme)
	}

	parts := strings.Split(path, "?")
	if len(parts) > 5 {
		return p, fmt.Errorf("too many \"?\" fields (dn?attrs?scope?filter?extensions)")
	}
	for len(parts) < 5 {
		parts = append(parts, "")
	}
	dec := make([]string, 5)
	for i, s := range parts {
		if dec[i], err = url.PathUnescape(s); err != nil {
			return p, fmt.Errorf("%q: %v", s, err)
		}
	}
	p.base = dec[0]
	for _, a := range strings.Split(parts[1], ",") {
		if a, _ = url.PathUnescape(a); strings.TrimSpace(a) != "" {
			p.attrs = append(p.attrs, strings.TrimSpace(a))
		}
	}
	switch strings.ToLower(dec[2]) {
	case "", "base":
		p.scope = ldap.ScopeBaseObject
	case "one", "onelevel":
		p.scope = ldap.ScopeSingleLevel
	case "sub", "subtree":
		p.scope = ldap.ScopeWholeSubtree
	case "subord", "subordinate", "children":
		p.scope = ldap.ScopeChildren
	default:
		return p, fmt.Errorf("scope %q is not base, one, sub or subord", dec[2])
	}
	p.filter = strings.TrimSpace(dec[3])
	if p.filter == "" {
		p.filter = "(objectClass=*)"
	} else if !strings.HasPrefix(p.filter, "(") {
		p.filter = "(" + p.filter + ")"
	}
	for _, ext := range strings.Split(parts[4], ",") {
		if strings.HasPrefix(strings.TrimSpace(ext), "!") {
			return p, fmt.Errorf("critical extension %q is not supported", ext)
		}
	}
	return p, nil
}

// checkHostPort accepts a host name, an IPv4 address or an IPv6 address
// (a colon only there) and a port number from 1 to 65535.
func checkHostPort(host, port string) error {
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" {
		return fmt.Errorf("no host (write ldap://HOST:PORT/...)")
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		return nil
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("host %q is neither a host name nor an IP address", host)
		}
	}
	return nil
}

// expandLDAP replaces $d in a base DN or filter template by the value
// looked up and $D by the value as a DN ("a.example" becomes
// "dc=a,dc=example"), as opendkim-db.c dkimf_db_mkldapquery does: "$"
// followed by anything else disappears with that character, and a lone
// "$" at the end disappears. The value is escaped for where it goes (the
// looked-up key comes from a message's From header): RFC 4514 in a DN
// (inDN), RFC 4515 in a filter, so that no value can change the
// structure of the DN or the filter.
func expandLDAP(tmpl, value string, inDN bool) string {
	esc := ldap.EscapeFilter
	if inDN {
		esc = ldap.EscapeDN
	}
	var b strings.Builder
	var last byte
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if last == '$' {
			switch c {
			case 'd':
				b.WriteString(esc(value))
			case 'D':
				if value == "" {
					break
				}
				labels := strings.Split(value, ".")
				for j, label := range labels {
					labels[j] = "dc=" + ldap.EscapeDN(label)
				}
				dn := strings.Join(labels, ",")
				if !inDN {
					dn = ldap.EscapeFilter(dn) // a DN as a filter value
				}
				b.WriteString(dn)
			}
		} else if c != '$' {
			b.WriteByte(c)
		}
		last = c
	}
	return b.String()
}

// redactURL drops anything that looks like credentials from a URL before
// it goes into a message.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	hostport, path, hasPath := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(hostport, '@'); i >= 0 {
		hostport = "…@" + hostport[i+1:]
	}
	if hasPath {
		return scheme + "://" + hostport + "/" + path
	}
	return scheme + "://" + hostport
}
