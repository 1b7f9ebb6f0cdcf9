package signer

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// The URLs Zimbra writes into opendkim.conf (zmconfigd: ldap_url +
// these suffixes, one per LDAP server, space separated).
const (
	zimbraST = "ldap://ldap1.example.com:389/?DKIMSelector?sub?(DKIMIdentity=$d)"
	zimbraKT = "ldap://ldap1.example.com:389/?DKIMDomain,DKIMSelector,DKIMKey,?sub?(DKIMSelector=$d)"
)

func TestParseLDAPURL(t *testing.T) {
	tests := []struct {
		url    string
		server ldapServer
		base   string
		attrs  []string
		scope  int
		filter string
	}{
		{zimbraST, ldapServer{"ldap", "ldap1.example.com:389"}, "", []string{"DKIMSelector"}, ldap.ScopeWholeSubtree, "(DKIMIdentity=$d)"},
		// The trailing comma Zimbra writes adds no attribute; the order is
		// the order of the KeyTable fields.
		{zimbraKT, ldapServer{"ldap", "ldap1.example.com:389"}, "", []string{"DKIMDomain", "DKIMSelector", "DKIMKey"}, ldap.ScopeWholeSubtree, "(DKIMSelector=$d)"},
		// contrib/ldap/README.LDAP, "Signature + User Identifier".
		{"ldap://192.0.2.1/ou=people,dc=example,dc=com?DKIMSelector,DKIMIdentity?sub?(DKIMIdentity=$d)",
			ldapServer{"ldap", "192.0.2.1:389"}, "ou=people,dc=example,dc=com", []string{"DKIMSelector", "DKIMIdentity"}, ldap.ScopeWholeSubtree, "(DKIMIdentity=$d)"},
		// opendkim/README: keyName by mail.
		{"ldap://localhost/dc=example,dc=com?keyName?sub?(mail=$d)", ldapServer{"ldap", "localhost:389"}, "dc=example,dc=com", []string{"keyName"}, ldap.ScopeWholeSubtree, "(mail=$d)"},
		{"LDAPS://ldap.example.com/o=x?a", ldapServer{"ldaps", "ldap.example.com:636"}, "o=x", []string{"a"}, ldap.ScopeBaseObject, "(objectClass=*)"},
		{"ldaps://ldap.example.com:1636/o=x?a??", ldapServer{"ldaps", "ldap.example.com:1636"}, "o=x", []string{"a"}, ldap.ScopeBaseObject, "(objectClass=*)"},
		{"ldap://[::1]:3890/?a?one?x=$d", ldapServer{"ldap", "[::1]:3890"}, "", []string{"a"}, ldap.ScopeSingleLevel, "(x=$d)"},
		{"ldap://[2001:db8::1]/?a?ONE", ldapServer{"ldap", "[2001:db8::1]:389"}, "", []string{"a"}, ldap.ScopeSingleLevel, "(objectClass=*)"},
		{"ldapi://%2Fopt%2Fzimbra%2Fdata%2Fldap%2Fstate%2Frun%2Fldapi/?a?subtree?(x=$d)", ldapServer{"ldapi", "/opt/zimbra/data/ldap/state/run/ldapi"}, "", []string{"a"}, ldap.ScopeWholeSubtree, "(x=$d)"},
		{"ldap://h/ou=a%20b,o=x?a%2Cb?children?(cn=a%3Fb)", ldapServer{"ldap", "h:389"}, "ou=a b,o=x", []string{"a,b"}, ldap.ScopeChildren, "(cn=a?b)"},
		{"ldap://h/?a,,b,?subord?(x=$d)?ext=1", ldapServer{"ldap", "h:389"}, "", []string{"a", "b"}, ldap.ScopeChildren, "(x=$d)"},
	}
	for _, tc := range tests {
		p, err := parseLDAPURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if p.server != tc.server || p.base != tc.base || !slices.Equal(p.attrs, tc.attrs) || p.scope != tc.scope || p.filter != tc.filter {
			t.Errorf("%s:\n got %+v\nwant server %+v base %q attrs %q scope %d filter %q", tc.url, p, tc.server, tc.base, tc.attrs, tc.scope, tc.filter)
		}
	}

	bad := []struct{ url, want string }{
		{"ldap:///?a", "no host"},
		{"ldap://:389/?a", "no host"},
		{"ldap://[/?a", "no host"},
		{"ldap://[]:389/?a", "no host"},
		{"http://h/?a", `scheme "http"`},
		{"ldap:h/?a", "not an LDAP URL"},
		{"ldap://h/?a?tree", `scope "tree"`},
		{"ldap://h/?a?sub?(x=$d)?e?f", "too many"},
		{"ldap://h/?a?sub?(x=$d)?!critical", "critical extension"},
		{"ldap://h?a", `"/" must separate`},
		{"ldap://cn=admin:pw@h/?a", "credentials in the URL"},
		{"ldap://h/%zz", "invalid URL escape"},
		{"ldap://a%5Db:389/?a", "neither a host name nor an IP address"},
		{"ldap://h%2Fx/?a", "neither a host name nor an IP address"},
		{"ldap://h:0/?a", `port "0"`},
		{"ldap://h:ldap/?a", `port "ldap"`},
		{"ldap://h:65536/?a", `port "65536"`},
	}
	for _, tc := range bad {
		if _, err := parseLDAPURL(tc.url); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.url, err, tc.want)
		}
	}
}

func TestParseLDAPDataset(t *testing.T) {
	// Zimbra, two LDAP servers: the second URL is a failover server.
	spec := zimbraKT + " " + strings.Replace(zimbraKT, "ldap1", "ldap2", 1) + "\t" + "ldaps://ldap3.example.com/?DKIMDomain,DKIMSelector,DKIMKey,?sub?(DKIMSelector=$d)"
	ds, warnings, err := parseLDAPDataset(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []ldapServer{{"ldap", "ldap1.example.com:389"}, {"ldap", "ldap2.example.com:389"}, {"ldaps", "ldap3.example.com:636"}}
	if !slices.Equal(ds.servers, want) || len(warnings) != 0 {
		t.Fatalf("servers %v warnings %q, want %v and none", ds.servers, warnings, want)
	}
	if ds.servers[2].String() != "ldaps://ldap3.example.com:636" || ds.servers[2].host() != "ldap3.example.com" {
		t.Errorf("server 3: %s, host %s", ds.servers[2], ds.servers[2].host())
	}

	// Only the first URL's base, attributes, scope and filter count.
	ds, warnings, err = parseLDAPDataset(zimbraST+" ldap://ldap2.example.com/o=other?DKIMSelector?sub?(mail=$d)", 1)
	if err != nil {
		t.Fatal(err)
	}
	if ds.filter != "(DKIMIdentity=$d)" || ds.base != "" || len(ds.servers) != 2 {
		t.Fatalf("dataset %+v", ds)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "URL 2") || !strings.Contains(warnings[0], "ignored") {
		t.Fatalf("warnings %q", warnings)
	}

	bad := []struct {
		spec     string
		minAttrs int
		want     string
	}{
		{"", 1, "empty"},
		{zimbraST, 3, "names 1 attribute(s): it must name domain, selector and key"},
		{"ldap://h/o=x", 1, "names 0 attribute(s): it must name the key name"},
		{"ldap://h/?a?sub?(DKIMIdentity=$d", 1, "filter"},
		{zimbraST + " ldap://h2/?a?bad", 1, "LDAP URL 2"},
		{"ldap://cn=x:secret@h/?a?sub?x", 1, "…@h"},
	}
	for _, tc := range bad {
		_, _, err := parseLDAPDataset(tc.spec, tc.minAttrs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.spec, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error shows the password: %v", tc.spec, err)
		}
	}
	if !isLDAPSpec(" LDAP://h/?a") || !isLDAPSpec("ldaps://h/") || !isLDAPSpec("ldapi:///") || isLDAPSpec("/etc/ldap") || isLDAPSpec("ldap:foo") {
		t.Error("isLDAPSpec")
	}
}

// TestExpandLDAP: $d is the looked-up key, escaped for a filter (RFC
// 4515) or for a DN (RFC 4514) according to where it goes, with
// opendkim-db.c dkimf_db_mkldapquery's template rules.
func TestExpandLDAP(t *testing.T) {
	tests := []struct {
		tmpl, value string
		inDN        bool
		want        string
	}{
		{"(DKIMIdentity=$d)", "example.com", false, "(DKIMIdentity=example.com)"},
		{"(DKIMIdentity=$d)", "user@example.com", false, "(DKIMIdentity=user@example.com)"},
		// The last two keys of the signing table order are not wildcards.
		{"(DKIMIdentity=$d)", "user@*", false, `(DKIMIdentity=user@\2a)`},
		{"(DKIMIdentity=$d)", "*", false, `(DKIMIdentity=\2a)`},
		{"(mail=$d)", "a(b)c\\d*e\x00f", false, `(mail=a\28b\29c\5cd\2ae\00f)`},
		{"(|(mail=$d)(alias=$d))", "x@y", false, "(|(mail=x@y)(alias=x@y))"},
		{"(mail=$d)", "jürgen@example.com", false, `(mail=j\c3\bcrgen@example.com)`}, // 8-bit bytes escaped too
		{"(member=$D)", "a,b.example", false, `(member=dc=a\5c,b,dc=example)`},
		{"ou=$D,o=x", "mail.example.com", true, "ou=dc=mail,dc=example,dc=com,o=x"},
		{"cn=$d,o=x", "a,b+c=d", true, `cn=a\,b\+c=d,o=x`},
		{"cn=$d,o=x", "#x ", true, `cn=\#x\ ,o=x`},
		{"$D", "", true, ""},
		{"(a=$x$d)", "v", false, "(a=v)"},
		{"(a=$$d)", "v", false, "(a=v)"},
		{"(a=b)$", "v", false, "(a=b)"},
		{"(a=b)", "v", false, "(a=b)"},
		{"", "v", false, ""},
	}
	for _, tc := range tests {
		if got := expandLDAP(tc.tmpl, tc.value, tc.inDN); got != tc.want {
			t.Errorf("expandLDAP(%q, %q, %v) = %q, want %q", tc.tmpl, tc.value, tc.inDN, got, tc.want)
		}
	}
}

// TestExpandLDAPHostileValues: whatever the key, the filter compiles to
// one equality assertion whose value is the key, and the base DN parses
// to the template's RDNs with the key as the one value: nothing in the
// key can change the structure of either.
func TestExpandLDAPHostileValues(t *testing.T) {
	for _, v := range []string{
		"*", "(", ")", "\\", "\x00", ",", "+", "=", "#lead", " lead", "trail ", "\"quoted\"", "<a>;b",
		")(objectClass=*", "a)(|(b=*)", "x\x00y", "cn=admin,dc=example", "jürgen@exämple.com", "\xff\xfe", "\\2a",
	} {
		f := expandLDAP("(DKIMIdentity=$d)", v, false)
		pkt, err := ldap.CompileFilter(f)
		if err != nil {
			t.Errorf("%q: filter %q does not compile: %v", v, f, err)
			continue
		}
		if pkt.Tag != ldap.FilterEqualityMatch || len(pkt.Children) != 2 || pkt.Children[1].Data.String() != v {
			t.Errorf("%q: filter %q is not (DKIMIdentity=<the value>)", v, f)
		}
		if !utf8.ValidString(v) {
			// search refuses it before expanding: see below.
			if _, found, err := (&ldapClient{}).search(&ldapDataset{base: "cn=$d", filter: "(a=$d)"}, v); found || err != nil {
				t.Errorf("%q: search found %v, %v; want nothing, without asking a server", v, found, err)
			}
			continue
		}
		base := expandLDAP("cn=$d,ou=keys,dc=example", v, true)
		dn, err := ldap.ParseDN(base)
		if err != nil {
			t.Errorf("%q: base %q does not parse: %v", v, base, err)
			continue
		}
		if len(dn.RDNs) != 3 || len(dn.RDNs[0].Attributes) != 1 || dn.RDNs[0].Attributes[0].Value != v || dn.RDNs[1].Attributes[0].Value != "keys" {
			t.Errorf("%q: base %q parses to %v", v, base, dn)
		}
	}
}

// TestInlineKeyDetection: a key table value that starts with "/", "./" or
// "../" is a file, anything else the key itself (opendkim.c
// dkimf_loadkey), and errors about inline keys never show them.
func TestInlineKeyDetection(t *testing.T) {
	dir := t.TempDir()
	pemKey := string(pkcs8PEM(t, testEdKey(t)))
	der, err := x509.MarshalPKCS8PrivateKey(testRSAKey(t))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	// OpenSSL 1.x opendkim-genkey (Zimbra 8.8, 9) writes PKCS#1.
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSAKey(t))}))
	path, _ := writeKey(t, dir, "k.private")
	const secret = "SECRETSECRETSECRET"
	tests := []struct {
		keydata string
		path    bool
		err     string
	}{
		{path, true, ""},
		{dir + "/missing.private", true, dir + "/missing.private"},
		{"./missing.private", true, "./missing.private"},
		{"../missing.private", true, "../missing.private"},
		{pemKey, false, ""},
		{"\n" + pemKey + "\n", false, ""},
		{pkcs1, false, ""},
		{b64, false, ""}, // base64 DER, "MII..."
		{".missing.private", false, "inline key: neither PEM nor base64 DER"},
		{"~/missing.private", false, "inline key"},
		{"-----BEGIN PRIVATE KEY-----\n" + secret + "\n-----END PRIVATE KEY-----\n", false, "inline key"},
		{secret, false, "inline key"},
	}
	for _, tc := range tests {
		if isPath(tc.keydata) != tc.path {
			t.Errorf("isPath(%.20q) = %v", tc.keydata, !tc.path)
		}
		k, _, err := loadKeyData(keyRow{name: "n", domain: "example.com", selector: "s", keydata: tc.keydata}, "example.com", true)
		if tc.err == "" {
			if err != nil || k == nil || k.Domain != "example.com" || k.Selector != "s" {
				t.Errorf("%.30q: %v, %v", tc.keydata, k, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%.30q: %v, want an error containing %q", tc.keydata, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}

// fakeDir answers LDAP queries from a map and records them.
type fakeDir struct {
	mu      sync.Mutex
	entries map[string][]string // $d → attribute values
	err     error
	queries []string
	gate    chan struct{} // when set, each query waits for it
}

func (f *fakeDir) search(ds *ldapDataset, key string) ([]string, bool, error) {
	f.mu.Lock()
	f.queries = append(f.queries, key)
	vals, ok := f.entries[key]
	err, gate := f.err, f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err != nil {
		return nil, false, err
	}
	return vals, ok, nil
}

func (f *fakeDir) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.queries)
}

func (f *fakeDir) set(key string, vals []string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vals == nil {
		delete(f.entries, key)
	} else {
		f.entries[key] = vals
	}
	f.err = err
}

// ldapSigner is a Signer whose tables are the fake directories, behind a
// cache with a clock the test moves.
func ldapSigner(t *testing.T, signST string, sign, keys *fakeDir, ttl time.Duration, multiple bool) (*Signer, *time.Time) {
	t.Helper()
	s, _, err := New(Config{Headers: []string{"From"}, MultipleSignatures: multiple, RequireSafeKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := parseLDAPDataset(signST, 1)
	if err != nil {
		t.Fatal(err)
	}
	kt, _, err := parseLDAPDataset(zimbraKT, 3)
	if err != nil {
		t.Fatal(err)
	}
	s.ldap = &ldapTables{sign: st, keys: kt, signC: sign, keysC: keys, cache: newLDAPCache(ttl, 0), requireSafe: true}
	now := time.Unix(1_800_000_000, 0)
	if s.ldap.cache != nil {
		s.ldap.cache.c.Now = func() time.Time { return now }
	}
	return s, &now
}

func newFake(entries map[string][]string) *fakeDir {
	if entries == nil {
		entries = map[string][]string{}
	}
	return &fakeDir{entries: entries}
}

// TestLDAPSigningTableOrder: over LDAP, the signing table is asked the
// keys of a plain table, in the same order, one query each; the local
// part keeps its case (OpenDKIM does not lower-case it), keys with
// non-ASCII bytes are not asked.
func TestLDAPSigningTableOrder(t *testing.T) {
	sign, keys := newFake(nil), newFake(nil)
	s, _ := ldapSigner(t, zimbraST, sign, keys, 0, false)
	reqs, err := s.Lookup("John.Doe", "Mail.Sub.Example.COM.")
	if err != nil || len(reqs) != 0 {
		t.Fatalf("%v, %v", reqs, err)
	}
	want := []string{"John.Doe@mail.sub.example.com", "mail.sub.example.com",
		"John.Doe@.sub.example.com", ".sub.example.com", "John.Doe@.example.com", ".example.com",
		"John.Doe@.com", ".com", "John.Doe@*", "*"}
	if got := sign.asked(); !slices.Equal(got, want) {
		t.Fatalf("queries\n got %q\nwant %q", got, want)
	}
	// The file table tries the same keys (lower-cased).
	if got := signingKeys("john.doe", "mail.sub.example.com"); len(got) != len(want) || !strings.EqualFold(strings.Join(got, " "), strings.Join(want, " ")) {
		t.Fatalf("plain table keys %q", got)
	}
	if len(keys.asked()) != 0 {
		t.Fatalf("key table asked %q", keys.asked())
	}

	sign2 := newFake(nil)
	s, _ = ldapSigner(t, zimbraST, sign2, keys, 0, false)
	if _, err := s.Lookup("jürgen", "example.com"); err != nil {
		t.Fatal(err)
	}
	if got, want := sign2.asked(), []string{"example.com", ".com", "*"}; !slices.Equal(got, want) {
		t.Fatalf("non-ASCII local part: queries %q, want %q", got, want)
	}
}

type dsi struct{ d, s, i string }

func dsis(reqs []Request) []dsi {
	var out []dsi
	for _, r := range reqs {
		out = append(out, dsi{r.Domain, r.Key.Selector, r.Identity})
	}
	return out
}

func zimbraEntry(t *testing.T, domain, selector string) ([]string, string) {
	t.Helper()
	return []string{domain, selector, string(pkcs8PEM(t, testEdKey(t)))}, selector
}

func TestLDAPLookup(t *testing.T) {
	oneKey, oneSel := zimbraEntry(t, "one.test", "AAAA-1111")
	subKey, subSel := zimbraEntry(t, "sub.one.test", "BBBB-2222")
	sign := newFake(map[string][]string{
		"one.test":              {oneSel},
		"boss@sub.one.test":     {subSel, "boss@sub.one.test"},
		".one.test":             {oneSel, "@one.test"},
		"pct.test":              {"%"},
		"nokey.test":            {"NO-SUCH-SELECTOR"},
		"empty.test":            {""},
		"other@one.test":        {oneSel, "@elsewhere.test"}, // i= outside d=: dropped
		"Upper@one.test":        {subSel},
		"%.test":                {"x"},
		"broken.test":           {"BROKEN"},
		"corrupt.test":          {"CORRUPT"},
		"pct-domain.test":       {"PCT"},
		"multi@multi.test":      {oneSel},
		"multi.test":            {subSel},
		".multi.test-never-hit": {"x"},
	})
	pctKey := []string{"%", "pctsel", string(pkcs8PEM(t, testEdKey(t)))}
	keys := newFake(map[string][]string{
		oneSel:     oneKey,
		subSel:     subKey,
		"pct.test": {"pct.test", "p", oneKey[2]},
		"BROKEN":   {"broken.test", "b", "-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END PRIVATE KEY-----\n"},
		"CORRUPT":  {"corrupt.test", "", oneKey[2]},
		"PCT":      pctKey,
	})
	s, _ := ldapSigner(t, "ldap://h/?DKIMSelector,DKIMIdentity?sub?(DKIMIdentity=$d)", sign, keys, time.Minute, false)
	tests := []struct {
		local, domain string
		want          []dsi
		err           string
	}{
		{"alice", "one.test", []dsi{{"one.test", "AAAA-1111", ""}}, ""},
		{"alice", "ONE.test", []dsi{{"one.test", "AAAA-1111", ""}}, ""},
		{"boss", "sub.one.test", []dsi{{"sub.one.test", "BBBB-2222", "boss@sub.one.test"}}, ""},
		{"carol", "sub.one.test", []dsi{{"one.test", "AAAA-1111", "@one.test"}}, ""},
		{"other", "one.test", []dsi{{"one.test", "AAAA-1111", ""}}, ""},
		{"Upper", "one.test", []dsi{{"sub.one.test", "BBBB-2222", ""}}, ""},
		{"upper", "one.test", []dsi{{"one.test", "AAAA-1111", ""}}, ""},
		{"x", "pct.test", []dsi{{"pct.test", "p", ""}}, ""},
		{"x", "pct-domain.test", []dsi{{"pct-domain.test", "pctsel", ""}}, ""},
		{"x", "unsigned.test", nil, ""},
		{"x", "nokey.test", nil, `LDAP signing table entry for "nokey.test" names key "NO-SUCH-SELECTOR", which is not in the LDAP key table`},
		{"x", "empty.test", nil, `LDAP signing table entry for "empty.test" has no DKIMSelector value`},
		{"x", "broken.test", nil, `LDAP key table entry "BROKEN" (domain broken.test, selector b): inline key`},
		{"x", "corrupt.test", nil, `LDAP key table entry "CORRUPT" (domain "corrupt.test", selector ""): no DKIMSelector value`},
		{"multi", "multi.test", []dsi{{"one.test", "AAAA-1111", ""}}, ""},
	}
	for _, tc := range tests {
		reqs, err := s.Lookup(tc.local, tc.domain)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s@%s: %v, want an error containing %q", tc.local, tc.domain, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "TOPSECRET") {
				t.Errorf("the error shows the key: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s@%s: %v", tc.local, tc.domain, err)
			continue
		}
		if got := dsis(reqs); !slices.Equal(got, tc.want) {
			t.Errorf("%s@%s: %v, want %v", tc.local, tc.domain, got, tc.want)
		}
	}

	// MultipleSignatures: every key that matches, in order.
	s, _ = ldapSigner(t, zimbraST, sign, keys, time.Minute, true)
	reqs, err := s.Lookup("multi", "multi.test")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dsis(reqs), []dsi{{"one.test", "AAAA-1111", ""}, {"sub.one.test", "BBBB-2222", ""}}; !slices.Equal(got, want) {
		t.Fatalf("multiple: %v, want %v", got, want)
	}
}

// TestLDAPErrorsTempfail: a query that fails is an error (the milter
// tempfails), whichever key of the order it was; never "no key".
func TestLDAPErrorsTempfail(t *testing.T) {
	down := errors.New("ldap://h:389: connection refused")
	sign, keys := newFake(map[string][]string{"one.test": {"S"}}), newFake(nil)
	k, _ := zimbraEntry(t, "one.test", "S")
	keys.set("S", k, nil)
	s, _ := ldapSigner(t, zimbraST, sign, keys, 0, false)
	sign.set("one.test", []string{"S"}, down)
	if _, err := s.Lookup("a", "one.test"); err == nil || !strings.Contains(err.Error(), `LDAP signing table lookup of "a@one.test": ldap://h:389: connection refused`) {
		t.Fatalf("signing table down: %v", err)
	}
	if _, err := s.Lookup("a", "unsigned.test"); err == nil {
		t.Fatal("signing table down, domain without key: no error")
	}
	sign.set("one.test", []string{"S"}, nil)
	keys.set("S", k, down)
	if _, err := s.Lookup("a", "one.test"); err == nil || !strings.Contains(err.Error(), `LDAP key table lookup of "S"`) {
		t.Fatalf("key table down: %v", err)
	}
}

func TestLDAPCache(t *testing.T) {
	k1, sel := zimbraEntry(t, "one.test", "S1")
	sign := newFake(map[string][]string{"one.test": {sel}})
	keys := newFake(map[string][]string{sel: k1})
	s, now := ldapSigner(t, zimbraST, sign, keys, time.Minute, false)
	first, err := s.Lookup("a", "one.test")
	if err != nil || len(first) != 1 {
		t.Fatalf("%v %v", first, err)
	}
	if n := len(sign.asked()) + len(keys.asked()); n != 3 {
		t.Fatalf("%d queries for the first message, want 3", n)
	}
	// Within the TTL: no query, the same parsed key, negative answers too,
	// and even with the directory down.
	sign.set("one.test", []string{sel}, errors.New("down"))
	keys.set(sel, k1, errors.New("down"))
	*now = now.Add(59 * time.Second)
	for range 100 {
		reqs, err := s.Lookup("a", "one.test")
		if err != nil || len(reqs) != 1 || reqs[0].Key != first[0].Key {
			t.Fatalf("cached lookup: %v %v", reqs, err)
		}
	}
	if n := len(sign.asked()) + len(keys.asked()); n != 3 {
		t.Fatalf("%d queries after 101 messages, want 3", n)
	}
	// Another sender of the same domain: its own key (b@one.test) is not
	// cached, so the directory must be asked, and it is down.
	if _, err := s.Lookup("b", "one.test"); err == nil {
		t.Fatal("uncached sender with the directory down: no error")
	}
	// After the TTL: asked again; errors are not cached.
	*now = now.Add(2 * time.Second)
	if _, err := s.Lookup("a", "one.test"); err == nil {
		t.Fatal("expired entry with the directory down: no error")
	}
	sign.set("one.test", []string{sel}, nil)
	keys.set(sel, k1, nil)
	before := len(sign.asked()) + len(keys.asked())
	if reqs, err := s.Lookup("a", "one.test"); err != nil || len(reqs) != 1 {
		t.Fatalf("after recovery: %v %v", reqs, err)
	}
	if n := len(sign.asked()) + len(keys.asked()) - before; n != 3 {
		t.Fatalf("%d queries after expiry, want 3", n)
	}

	// A malformed key is parsed once per cache entry: the error comes from
	// the cache until the TTL.
	sign.set("bad.test", []string{"BAD"}, nil)
	keys.set("BAD", []string{"bad.test", "BAD", "not a key"}, nil)
	before = len(keys.asked())
	for range 3 {
		if _, err := s.Lookup("a", "bad.test"); err == nil || !strings.Contains(err.Error(), "(domain bad.test, selector BAD): inline key") {
			t.Fatalf("malformed key: %v", err)
		}
	}
	if n := len(keys.asked()) - before; n != 1 {
		t.Fatalf("malformed key asked %d times, want 1", n)
	}

	// TTL 0: every message asks.
	sign0, keys0 := newFake(map[string][]string{"one.test": {sel}}), newFake(map[string][]string{sel: k1})
	s0, _ := ldapSigner(t, zimbraST, sign0, keys0, 0, false)
	for range 10 {
		if _, err := s0.Lookup("a", "one.test"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sign0.asked()) + len(keys0.asked()); n != 30 {
		t.Fatalf("no cache: %d queries for 10 messages, want 30", n)
	}
}

// TestLDAPCacheConcurrentMisses: sessions that miss the same key at once
// share one query, and its error.
func TestLDAPCacheConcurrentMisses(t *testing.T) {
	c := newLDAPCache(time.Minute, 0)
	var calls int
	var mu sync.Mutex
	gate := make(chan struct{})
	started := make(chan struct{})
	fill := func() (any, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			close(started)
		}
		<-gate
		return "v", nil
	}
	var wg sync.WaitGroup
	results := make(chan any, 20)
	wg.Add(1)
	go func() {
		defer wg.Done()
		v, _ := c.get("k", fill)
		results <- v
	}()
	<-started
	for range 19 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _ := c.get("k", fill)
			results <- v
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them queue on the call
	close(gate)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "v" {
			t.Fatalf("result %v", v)
		}
	}
	if calls != 1 {
		t.Fatalf("%d fills for 20 concurrent misses, want 1", calls)
	}

	// Errors are shared but not kept.
	boom := errors.New("boom")
	if _, err := c.get("e", func() (any, error) { return nil, boom }); err != boom {
		t.Fatal(err)
	}
	if v, err := c.get("e", func() (any, error) { return "ok", nil }); err != nil || v != "ok" {
		t.Fatalf("after an error: %v %v", v, err)
	}
}

func TestLDAPCacheBound(t *testing.T) {
	c := newLDAPCache(time.Minute, 3)
	fills := 0
	get := func(k string) {
		c.get(k, func() (any, error) { fills++; return k, nil })
	}
	for _, k := range []string{"a", "b", "c", "a", "d"} { // d evicts b, the least recently used
		get(k)
	}
	if c.len() != 3 || fills != 4 {
		t.Fatalf("len %d fills %d", c.len(), fills)
	}
	get("a")
	get("c")
	get("d")
	if fills != 4 {
		t.Fatalf("a, c, d were evicted: fills %d", fills)
	}
	get("b")
	if fills != 5 {
		t.Fatalf("b was not evicted: fills %d", fills)
	}
	if newLDAPCache(0, 10) != nil {
		t.Fatal("TTL 0 makes a cache")
	}
	var off *ldapCache
	n := 0
	for range 3 {
		off.get("k", func() (any, error) { n++; return nil, nil })
	}
	if n != 3 || off.len() != 0 {
		t.Fatalf("nil cache: %d fills", n)
	}
}

func TestLDAPErrText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New("")), "invalid credentials (LDAP result 49)"},
		{ldap.NewError(ldap.LDAPResultUnwillingToPerform, errors.New("unauthenticated bind")), "unwilling to perform (LDAP result 53): unauthenticated bind"},
		{ldap.NewError(ldap.ErrorNetwork, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")), "dial tcp 127.0.0.1:1: connect: connection refused"},
		{fmt.Errorf("plain"), "plain"},
	}
	for _, tc := range tests {
		if got := ldapErrText(tc.err); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
	be := &bindError{srv: ldapServer{"ldap", "h:389"}, dn: "uid=zmpostfix,cn=appaccts,cn=zimbra", err: ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New(""))}
	if got := be.Error(); got != `ldap://h:389: bind as "uid=zmpostfix,cn=appaccts,cn=zimbra" refused: invalid credentials (LDAP result 49)` {
		t.Errorf("bind error: %s", got)
	}
	if !ldap.IsErrorWithCode(be, ldap.LDAPResultInvalidCredentials) {
		t.Error("bindError does not unwrap")
	}
}

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pw, w, err := readPasswordFile(writeFile(t, dir, "pw", "s3cret pass\n", 0o600), true)
	if err != nil || pw != "s3cret pass" || w != "" {
		t.Fatalf("%q %q %v", pw, w, err)
	}
	// Readable by group or others: refused like an unsafe key, naming the
	// file and its mode, unless require_safe_keys is off.
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		p := writeFile(t, dir, fmt.Sprintf("pw%o", mode), "x\r\n", mode)
		os.Chmod(p, mode)
		if _, _, err := readPasswordFile(p, true); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), fmt.Sprintf("mode %04o", mode)) || !strings.Contains(err.Error(), "require_safe_keys") {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		pw, w, err = readPasswordFile(p, false)
		if err != nil || pw != "x" || !strings.Contains(w, fmt.Sprintf("mode %04o", mode)) {
			t.Fatalf("mode %04o, require_safe_keys = false: %q %q %v", mode, pw, w, err)
		}
	}
	if _, _, err := readPasswordFile(writeFile(t, dir, "empty", "\n", 0o600), true); err == nil {
		t.Fatal("empty password file accepted")
	}
	_, _, err = New(Config{Headers: []string{"From"}, KeyTable: zimbraKT, SigningTable: zimbraST, LDAPBindDN: "cn=x", LDAPBindPassword: "a", LDAPBindPasswordFile: dir + "/pw"})
	if err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("password and file: %v", err)
	}
}

// TestLDAPCleartextWarning: a simple bind over plain ldap:// to a host
// that is not loopback is warned about; StartTLS, ldaps://, ldapi://,
// loopback and an anonymous bind are not.
func TestLDAPCleartextWarning(t *testing.T) {
	srv := func(u string) ldapServer {
		p, err := parseLDAPURL(u)
		if err != nil {
			t.Fatal(err)
		}
		return p.server
	}
	for _, tc := range []struct {
		url      string
		password string
		useTLS   bool
		warn     bool
	}{
		{"ldap://ldap.example.com/", "pw", false, true},
		{"ldap://192.0.2.1:3890/", "pw", false, true},
		{"ldap://ldap.example.com/", "pw", true, false},
		{"ldaps://ldap.example.com/", "pw", false, false},
		{"ldapi:///", "pw", false, false},
		{"ldap://127.0.0.1/", "pw", false, false},
		{"ldap://[::1]:389/", "pw", false, false},
		{"ldap://localhost/", "pw", false, false},
		{"ldap://ldap.example.com/", "", false, false},
	} {
		c := ldapSettings{bindDN: "cn=vouch", password: tc.password, useTLS: tc.useTLS}.client([]ldapServer{srv(tc.url)})
		w := c.cleartextWarnings()
		if (len(w) > 0) != tc.warn {
			t.Errorf("%s (password %v, StartTLS %v): warnings %q", tc.url, tc.password != "", tc.useTLS, w)
		}
		if len(w) > 0 && (!strings.Contains(w[0], "clear text") || strings.Contains(w[0], "pw")) {
			t.Errorf("warning %q", w[0])
		}
	}
}

// TestLDAPMixedTables: a SigningTable file with the KeyTable in LDAP, and
// an LDAP SigningTable with a KeyTable file (names are checked per
// message then, as OpenDKIM does).
func TestLDAPMixedTables(t *testing.T) {
	k, sel := zimbraEntry(t, "one.test", "S1")
	keys := newFake(map[string][]string{sel: k})
	s, _ := ldapSigner(t, zimbraST, newFake(nil), keys, time.Minute, false)
	s.ldap.sign, s.ldap.signC = nil, nil
	var err error
	if s.table, err = parseSigningTable("csl:one.test=S1,two.test=MISSING", nil); err != nil {
		t.Fatal(err)
	}
	if reqs, err := s.Lookup("a", "one.test"); err != nil || !slices.Equal(dsis(reqs), []dsi{{"one.test", "S1", ""}}) {
		t.Fatalf("file signing table, LDAP key table: %v %v", reqs, err)
	}
	if _, err := s.Lookup("a", "two.test"); err == nil || !strings.Contains(err.Error(), `names key "MISSING", which is not in the LDAP key table`) {
		t.Fatalf("unknown key: %v", err)
	}

	dir := t.TempDir()
	path, _ := writeKey(t, dir, "f.private")
	sign := newFake(map[string][]string{"one.test": {"filekey"}, "two.test": {"nokey"}})
	s, _ = ldapSigner(t, zimbraST, sign, newFake(nil), time.Minute, false)
	s.ldap.keys, s.ldap.keysC = nil, nil
	if s.rows, err = parseKeyTable("csl:filekey=one.test:fsel:" + path); err != nil {
		t.Fatal(err)
	}
	s.keys["filekey"], _, err = loadRow(s.rows["filekey"], "one.test", true)
	if err != nil {
		t.Fatal(err)
	}
	if reqs, err := s.Lookup("a", "one.test"); err != nil || !slices.Equal(dsis(reqs), []dsi{{"one.test", "fsel", ""}}) {
		t.Fatalf("LDAP signing table, key table file: %v %v", reqs, err)
	}
	if _, err := s.Lookup("a", "two.test"); err == nil || !strings.Contains(err.Error(), `LDAP signing table entry for "two.test": key "nokey" is not in the key table`) {
		t.Fatalf("unknown key: %v", err)
	}
}
