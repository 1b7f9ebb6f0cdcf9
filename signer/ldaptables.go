package signer

import (
	"fmt"
	"os"
	"strings"
)

// ldapTables is the LDAP side of a Signer: a SigningTable and/or a
// KeyTable in a directory, as OpenDKIM reads them (Zimbra keeps both on
// each domain entry), behind one cache.
type ldapTables struct {
	sign, keys   *ldapDataset // nil when that table is not in LDAP
	signC, keysC searcher
	clients      []*ldapClient // distinct
	cache        *ldapCache
	requireSafe  bool
}

// searcher runs one query of a data set: *ldapClient, or a fake in tests.
type searcher interface {
	search(ds *ldapDataset, key string) (vals []string, found bool, err error)
}

// ldapAnswer is a cached signing table answer.
type ldapAnswer struct {
	found bool
	vals  []string
}

// ldapKeyEntry is a cached key table answer: the row and its key, loaded
// once per cache entry (unless it depends on the From domain), or why it
// cannot be loaded.
type ldapKeyEntry struct {
	found bool
	row   keyRow
	key   *Key
	err   error
}

// newLDAPTables opens the LDAP tables of cfg and binds once to each server
// list, so that a wrong password or an unreachable directory stops vouch
// at start with the server and the bind DN named.
func newLDAPTables(cfg Config, signLDAP, keysLDAP bool) (*ldapTables, []string, error) {
	var warnings []string
	st := ldapSettings{bindDN: cfg.LDAPBindDN, password: cfg.LDAPBindPassword, useTLS: cfg.LDAPUseTLS, timeout: cfg.LDAPTimeout}
	if st.timeout <= 0 {
		st.timeout = DefaultLDAPTimeout
	}
	if cfg.LDAPBindPasswordFile != "" {
		if cfg.LDAPBindPassword != "" {
			return nil, nil, fmt.Errorf("signing.ldap_bind_password and ldap_bind_password_file are both set: keep one")
		}
		pw, w, err := readPasswordFile(cfg.LDAPBindPasswordFile, cfg.RequireSafeKeys)
		if err != nil {
			return nil, nil, fmt.Errorf("signing.ldap_bind_password_file: %w", err)
		}
		if w != "" {
			warnings = append(warnings, w)
		}
		st.password = pw
	}
	if st.bindDN != "" && st.password == "" {
		return nil, nil, fmt.Errorf("signing.ldap_bind_dn %q has no password (ldap_bind_password or ldap_bind_password_file)", st.bindDN)
	}
	if st.bindDN == "" && st.password != "" {
		return nil, nil, fmt.Errorf("signing: an LDAP bind password is set but no ldap_bind_dn")
	}
	if cfg.LDAPTLSCAFile != "" {
		roots, err := loadCAFile(cfg.LDAPTLSCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("signing.ldap_tls_ca_file: %w", err)
		}
		st.roots = roots
	}

	t := &ldapTables{cache: newLDAPCache(cfg.LDAPCacheTTL, DefaultLDAPCacheSize), requireSafe: cfg.RequireSafeKeys}
	clients := map[string]*ldapClient{}
	client := func(ds *ldapDataset) *ldapClient {
		var ids []string
		for _, s := range ds.servers {
			ids = append(ids, s.String())
		}
		id := strings.Join(ids, " ")
		if c, ok := clients[id]; ok {
			return c
		}
		c := st.client(ds.servers)
		clients[id] = c
		t.clients = append(t.clients, c)
		return c
	}
	if signLDAP {
		ds, w, err := parseLDAPDataset(cfg.SigningTable, 1)
		if err != nil {
			return nil, nil, fmt.Errorf("signing table: %w", err)
		}
		warnings = append(warnings, prefixAll("signing table: ", w)...)
		t.sign, t.signC = ds, client(ds)
	}
	if keysLDAP {
		ds, w, err := parseLDAPDataset(cfg.KeyTable, 3)
		if err != nil {
			return nil, nil, fmt.Errorf("key table: %w", err)
		}
		warnings = append(warnings, prefixAll("key table: ", w)...)
		t.keys, t.keysC = ds, client(ds)
	}
	for _, c := range t.clients {
		warnings = append(warnings, c.cleartextWarnings()...)
	}
	for _, c := range t.clients {
		if _, _, _, err := c.get(); err != nil {
			t.close()
			return nil, nil, fmt.Errorf("LDAP: %w", err)
		}
	}
	return t, warnings, nil
}

// readPasswordFile reads a password file: its content without the final
// line end. A file that group or others may read is refused like an unsafe
// key (a warning with requireSafe false).
func readPasswordFile(path string, requireSafe bool) (string, string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", err
	}
	var warning string
	if perm := fi.Mode().Perm(); perm&0o044 != 0 {
		warning = fmt.Sprintf("%s: mode %04o lets group or others read the LDAP bind password (want 0600 or 0400)", path, perm)
		if requireSafe {
			return "", "", fmt.Errorf("%s (fix it, or set signing.require_safe_keys = false)", warning)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	pw := strings.TrimRight(string(data), "\r\n")
	if pw == "" {
		return "", "", fmt.Errorf("%s is empty", path)
	}
	return pw, warning, nil
}

func prefixAll(prefix string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = prefix + s
	}
	return out
}

func (t *ldapTables) close() {
	for _, c := range t.clients {
		c.close()
	}
}

func (t *ldapTables) queries() uint64 {
	var n uint64
	for _, c := range t.clients {
		n += c.queries.Load()
	}
	return n
}

// signingRows looks local@domain up in the LDAP signing table, one query
// per key in OpenDKIM's order (dkimf_apply_signtable: user@host, host,
// user@.parent and .parent per level, user@*, *), the first match only
// unless multiple. local is the local part as written in From (OpenDKIM
// does not lower-case it; the directory's matching rule decides), domain
// is lower case. A key with a non-ASCII byte is not found without asking
// (the table is opened DKIMF_DB_FLAG_ASCIIONLY). The first attribute is
// the key name, the second, if the URL names one, the signing identity.
// Any failed query is an error: the message must be tempfailed, since a
// later key might have matched.
func (t *ldapTables) signingRows(local, domain string, multiple bool) ([]signRow, error) {
	var out []signRow
	for _, k := range signingKeys(local, domain) {
		if !isASCII(k) {
			continue
		}
		v, err := t.cache.get("s\x00"+k, func() (any, error) {
			vals, found, err := t.signC.search(t.sign, k)
			return ldapAnswer{found: found, vals: vals}, err
		})
		if err != nil {
			return nil, fmt.Errorf("LDAP signing table lookup of %q: %w", k, err)
		}
		a := v.(ldapAnswer)
		if !a.found {
			continue
		}
		source := fmt.Sprintf("LDAP signing table entry for %q", k)
		if a.vals[0] == "" {
			// OpenDKIM: found with an empty value is a read error.
			return nil, fmt.Errorf("%s has no %s value", source, t.sign.attrs[0])
		}
		r := signRow{pattern: k, keyName: a.vals[0], source: source}
		if len(a.vals) > 1 {
			r.identity = a.vals[1]
		}
		out = append(out, r)
		if !multiple {
			break
		}
	}
	return out, nil
}

// key returns the key named name in the LDAP key table, for mail from
// fromDomain. The first attributes are the domain, the selector and the
// key: a path if it starts with "/", "./" or "../", else the key itself
// (PEM, or base64 DER).
func (t *ldapTables) key(name, fromDomain, referrer string) (*Key, error) {
	v, err := t.cache.get("k\x00"+name, func() (any, error) {
		vals, found, err := t.keysC.search(t.keys, name)
		if err != nil || !found {
			return &ldapKeyEntry{}, err
		}
		e := &ldapKeyEntry{found: true, row: keyRow{name: name, domain: strings.ToLower(strings.TrimSpace(vals[0])),
			selector: strings.TrimSpace(vals[1]), keydata: vals[2], source: fmt.Sprintf("LDAP key table entry %q", name)}}
		for i, field := range []string{e.row.domain, e.row.selector, e.row.keydata} {
			if strings.TrimSpace(field) == "" {
				e.err = fmt.Errorf("%s (domain %q, selector %q): no %s value (OpenDKIM: KeyTable entry corrupt)", e.row.source, e.row.domain, e.row.selector, t.keys.attrs[i])
				return e, nil
			}
		}
		if !fromDomainDependent(e.row) {
			e.key, e.err = t.load(e.row, "")
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("LDAP key table lookup of %q: %w", name, err)
	}
	e := v.(*ldapKeyEntry)
	switch {
	case !e.found:
		return nil, fmt.Errorf("%s names key %q, which is not in the LDAP key table", referrer, name)
	case e.err != nil:
		return nil, e.err
	case e.key != nil:
		return e.key, nil
	}
	return t.load(e.row, fromDomain)
}

// load loads an LDAP key table row's key; an error names the entry, its
// domain and selector, never the key.
func (t *ldapTables) load(r keyRow, fromDomain string) (*Key, error) {
	k, _, err := loadKeyData(r, fromDomain, t.requireSafe)
	if err != nil {
		domain := r.domain
		if domain == "%" {
			domain = fromDomain
		}
		return nil, fmt.Errorf("%s (domain %s, selector %s): %w", r.source, domain, r.selector, err)
	}
	return k, nil
}

// fromDomainDependent: the row's d= or key file depends on the From domain.
func fromDomainDependent(r keyRow) bool {
	return r.domain == "%" || (strings.HasPrefix(r.keydata, "/") && strings.Contains(r.keydata, "%"))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
