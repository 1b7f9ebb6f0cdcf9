// Package signer decides which keys sign a message and signs it with DKIM
// as the message streams (RFC 6376, RFC 8463 for Ed25519). It reads
// OpenDKIM's KeyTable, SigningTable and InternalHosts unchanged.
package signer

import (
	"crypto"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"vouch/internal/mailtext"
	"vouch/internal/opensslrsa"
)

// Config is the signing part of the configuration.
type Config struct {
	InternalHosts      []string
	InternalHostsFile  string
	KeyTable           string
	SigningTable       string
	MultipleSignatures bool
	RequireSafeKeys    bool
	Headers            []string
	Oversign           []string
	SignatureTTL       time.Duration
	Keys               []InlineKey
	Rotation           RotationConfig

	// LDAP, for a KeyTable or SigningTable given as ldap://, ldaps:// or
	// ldapi:// URLs (OpenDKIM's LDAP data sets; space-separated URLs are
	// failover servers). Simple bind when LDAPBindDN is set, with the
	// password itself or the content of LDAPBindPasswordFile; StartTLS on
	// ldap:// when LDAPUseTLS; server certificates are checked against
	// LDAPTLSCAFile, or the system's CAs when it is empty.
	LDAPBindDN           string
	LDAPBindPassword     string
	LDAPBindPasswordFile string
	LDAPUseTLS           bool
	LDAPTLSCAFile        string
	// LDAPTimeout bounds each connection attempt and each query (0:
	// DefaultLDAPTimeout, OpenDKIM's 5s).
	LDAPTimeout time.Duration
	// LDAPCacheTTL keeps LDAP answers, found and not found, this long;
	// 0 asks the directory for every message, as OpenDKIM does.
	LDAPCacheTTL time.Duration
}

// InlineKey is a [[signing.key]] entry, with its successor if it names
// one (see Rotation).
type InlineKey struct {
	Domain, Selector, PrivateKey string
	NextSelector, NextPrivateKey string
}

// Key is a loaded private key with its domain and selector.
type Key struct {
	Name     string // KeyTable name, or domain/selector for inline keys
	Domain   string
	Selector string
	Signer   crypto.Signer
	Source   string // file:line or config key
	Path     string // the key file ("" for key data in a KeyTable or LDAP)

	fast crypto.Signer // Signer through OpenSSL (build tag openssl), or nil
}

// signWith is the signer for the DKIM signatures made with k.
func (k *Key) signWith() crypto.Signer {
	if k.fast != nil {
		return k.fast
	}
	return k.Signer
}

// newKey is a loaded key, with its OpenSSL signer in a build that has
// one. If OpenSSL refuses a key crypto/rsa accepted, crypto/rsa signs and
// the warning says so: a slower signature, never an unsigned message.
func newKey(name, domain, selector string, key crypto.Signer, source, path string) (*Key, string) {
	k := &Key{Name: name, Domain: domain, Selector: selector, Signer: key, Source: source, Path: path}
	fast, err := opensslrsa.Wrap(key)
	if err != nil {
		return k, fmt.Sprintf("%s: %v; signing with Go's crypto/rsa instead", source, err)
	}
	k.fast = fast
	return k, ""
}

// Request is one signature to add to a message.
type Request struct {
	Key      *Key
	Domain   string // d=
	Identity string // i=, optional
}

// Signer holds the trust list, tables and keys. It is immutable except for
// the cache of keys whose path depends on the From domain.
type Signer struct {
	cfg      Config
	internal *HostList
	table    *signingTable
	rows     map[string]keyRow
	keys     map[string]*Key   // KeyTable name → key (fixed paths and inline data)
	inline   map[string][]*Key // domain → [[signing.key]] keys
	headers  map[string]bool   // lower-case names of headers to sign
	hOrder   []headerName      // Headers then Oversign, each name once: the order of h=
	oversign []headerName      // Oversign
	ldap     *ldapTables       // tables in LDAP, or nil
	rot      *Rotation         // inline keys with a successor, or nil

	mu   sync.Mutex
	lazy map[string]*Key // "name\x00domain" → key for paths with %
}

// New loads everything the configuration names. Any unreadable file,
// bad line or unusable key is an error that names it; warnings (weak
// keys, no keys at all) are returned for the log.
func New(cfg Config) (*Signer, []string, error) {
	s := &Signer{cfg: cfg, keys: map[string]*Key{}, inline: map[string][]*Key{}, lazy: map[string]*Key{}, headers: map[string]bool{}}
	var warnings []string
	// Every problem is collected, so that one run of serve -check lists
	// them all: each missing or unsafe key, each bad table line.
	var errs []error
	var err error
	if s.internal, err = ParseHostEntries("signing.internal_hosts", cfg.InternalHosts); err != nil {
		errs = append(errs, err)
	} else if cfg.InternalHostsFile != "" {
		if err := s.internal.AddFile(cfg.InternalHostsFile); err != nil {
			errs = append(errs, fmt.Errorf("internal hosts: %w", err))
		}
	}
	warnings = append(warnings, s.internal.Warnings()...)
	for _, h := range cfg.Headers {
		s.headers[strings.ToLower(h)] = true
	}
	if !s.headers["from"] {
		errs = append(errs, fmt.Errorf("signing.headers: From must be signed (RFC 6376 §5.4)"))
	}
	for _, h := range cfg.Oversign {
		s.headers[strings.ToLower(h)] = true
	}
	// Lower-cased once here, not for every message (headerKeys).
	for _, h := range slices.Concat(cfg.Headers, cfg.Oversign) {
		n := headerName{h, strings.ToLower(h)}
		if !slices.ContainsFunc(s.hOrder, func(o headerName) bool { return o.lower == n.lower }) {
			s.hOrder = append(s.hOrder, n)
		}
	}
	for _, h := range cfg.Oversign {
		s.oversign = append(s.oversign, headerName{h, strings.ToLower(h)})
	}

	keysLDAP, signLDAP := isLDAPSpec(cfg.KeyTable), isLDAPSpec(cfg.SigningTable)
	if cfg.KeyTable != "" && !keysLDAP {
		if s.rows, err = parseKeyTable(cfg.KeyTable); err != nil {
			errs = append(errs, err)
		}
		for _, name := range slices.Sorted(maps.Keys(s.rows)) { // a stable order for the errors
			r := s.rows[name]
			if r.broken() || isPath(r.keydata) && strings.Contains(r.keydata, "%") {
				continue // reported above, or loaded per From domain
			}
			k, w, err := loadRow(r, "", cfg.RequireSafeKeys)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if w != "" {
				warnings = append(warnings, w)
			}
			s.keys[r.name] = k
		}
	}
	if cfg.SigningTable != "" {
		if cfg.KeyTable == "" {
			errs = append(errs, fmt.Errorf("signing.signing_table needs signing.key_table"))
		} else if !signLDAP {
			// rows is nil when the key table is in LDAP or could not be
			// read: then the names are not checked here.
			if s.table, err = parseSigningTable(cfg.SigningTable, s.rows); err != nil {
				errs = append(errs, err)
			}
		}
	} else if cfg.KeyTable != "" {
		warnings = append(warnings, "signing.key_table is set without signing.signing_table: its keys are never used")
	}
	var pairs [][2]*Key
	for i, ik := range cfg.Keys {
		where := fmt.Sprintf("signing.key[%d]", i)
		if ik.Domain == "" || ik.Selector == "" || ik.PrivateKey == "" {
			errs = append(errs, fmt.Errorf("%s: domain, selector and private_key are all required", where))
			continue
		}
		d := strings.ToLower(strings.TrimSuffix(ik.Domain, "."))
		k, w, err := loadInlineKey(d, ik.Selector, ik.PrivateKey, where, cfg.RequireSafeKeys)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		warnings = append(warnings, w...)
		s.inline[d] = append(s.inline[d], k)
		if ik.NextSelector != "" || ik.NextPrivateKey != "" {
			next, w, err := loadInlineKey(d, ik.NextSelector, ik.NextPrivateKey, where+".next_private_key", cfg.RequireSafeKeys)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			warnings = append(warnings, w...)
			pairs = append(pairs, [2]*Key{k, next})
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	if len(pairs) > 0 {
		if s.rot, err = newRotation(cfg.Rotation, pairs); err != nil {
			return nil, nil, err
		}
	}
	// LDAP last, so that nothing else can fail once connected.
	if keysLDAP || signLDAP {
		var w []string
		if s.ldap, w, err = newLDAPTables(cfg, signLDAP, keysLDAP); err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, w...)
	}
	if !s.HasKeys() {
		warnings = append(warnings, "no signing keys configured: nothing will be signed (add [[signing.key]] or key_table/signing_table)")
	}
	return s, warnings, nil
}

// loadInlineKey loads a [[signing.key]] key file.
func loadInlineKey(domain, selector, path, where string, requireSafe bool) (*Key, []string, error) {
	if selector == "" || path == "" {
		return nil, nil, fmt.Errorf("%s: a selector and a key file are both required", where)
	}
	signer, w, err := LoadKeyFile(path, requireSafe)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	var warnings []string
	if w != "" {
		warnings = append(warnings, fmt.Sprintf("%s: %s", path, w))
	}
	k, w := newKey(domain+"/"+selector, domain, selector, signer, where, path)
	if w != "" {
		warnings = append(warnings, w)
	}
	return k, warnings, nil
}

// Rotation is the switching of inline keys to their successors, or nil
// when no [[signing.key]] names a next key.
func (s *Signer) Rotation() *Rotation {
	if s == nil {
		return nil
	}
	return s.rot
}

// Keys returns every key loaded at start: [[signing.key]] entries in
// config order, then KeyTable rows with a fixed key by name (Domain "%"
// for rows that sign for the From domain). Rows whose key path contains
// "%" and keys in LDAP are not listed: they are loaded per message.
func (s *Signer) Keys() []*Key {
	var out []*Key
	for _, ik := range s.cfg.Keys {
		d := strings.ToLower(strings.TrimSuffix(ik.Domain, "."))
		for _, k := range s.inline[d] {
			if k.Selector == ik.Selector && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	names := slices.Sorted(maps.Keys(s.keys))
	for _, n := range names {
		out = append(out, s.keys[n])
	}
	return out
}

// HasKeys reports whether anything can ever be signed.
func (s *Signer) HasKeys() bool {
	return s.table != nil || (s.ldap != nil && s.ldap.sign != nil) || len(s.inline) > 0
}

// LDAPQueries is the number of LDAP searches sent so far (answers from the
// cache are not queries).
func (s *Signer) LDAPQueries() uint64 {
	if s == nil || s.ldap == nil {
		return 0
	}
	return s.ldap.queries()
}

// Close releases the LDAP connections. The Signer stays usable: a later
// lookup connects again. Without Close, an unused connection is closed
// after two idle minutes.
func (s *Signer) Close() {
	if s != nil && s.ldap != nil {
		s.ldap.close()
	}
}

// Internal reports whether a client is an internal host, and the entry
// that matched.
func (s *Signer) Internal(host string, ip netip.Addr) (bool, string) {
	return s.internal.Match(host, ip)
}

// Lookup returns the signatures a message from local@domain gets: the
// signing table's matches first, and if it has none, the inline keys of
// the domain. An error means a key could not be loaded: the caller must
// tempfail rather than send the message unsigned.
//
// With the signing table in LDAP, every key of the lookup order is one
// query (cached for LDAPCacheTTL); a directory that cannot be asked is an
// error, never "no key".
//
// The domain must be valid (FromAddress returns one): it becomes d=, part
// of key paths and of the lookup keys, two per label. It is checked again
// here, and with the address length (maxAddress) that bounds what
// signingKeys builds; an invalid one is an error.
func (s *Signer) Lookup(local, domain string) ([]Request, error) {
	asWritten := local
	local, domain = strings.ToLower(local), strings.ToLower(strings.TrimSuffix(domain, "."))
	if !mailtext.ValidDomain(domain) || len(local)+1+len(domain) > maxAddress {
		return nil, fmt.Errorf("not signing for %q: not a valid author address", mailtext.Printable(local+"@"+domain))
	}
	var rows []signRow
	switch {
	case s.table != nil:
		rows = s.table.lookup(local, domain, s.cfg.MultipleSignatures)
	case s.ldap != nil && s.ldap.sign != nil:
		var err error
		if rows, err = s.ldap.signingRows(asWritten, domain, s.cfg.MultipleSignatures); err != nil {
			return nil, err
		}
	}
	var reqs []Request
	for _, row := range rows {
		name := row.keyName
		if name == "%" {
			name = domain
		}
		k, err := s.keyByName(name, domain, row)
		if err != nil {
			return nil, err
		}
		d := k.Domain
		identity := strings.ReplaceAll(row.identity, "%", domain)
		if identity != "" && !identityInDomain(identity, d) {
			identity = "" // OpenDKIM drops an i= outside d= (DKIM_LIBFLAGS_DROPSIGNER)
		}
		reqs = append(reqs, Request{Key: k, Domain: d, Identity: identity})
	}
	if len(reqs) == 0 {
		for _, k := range s.inline[domain] {
			k = s.rot.active(k)
			reqs = append(reqs, Request{Key: k, Domain: k.Domain})
		}
	}
	return reqs, nil
}

// keyByName returns the key a signing table row names, from the LDAP key
// table or the KeyTable file.
func (s *Signer) keyByName(name, domain string, row signRow) (*Key, error) {
	if s.ldap != nil && s.ldap.keys != nil {
		return s.ldap.key(name, domain, row.source)
	}
	r, ok := s.rows[name]
	if !ok {
		return nil, fmt.Errorf("%s: key %q is not in the key table", row.source, name)
	}
	return s.key(r, domain)
}

// key returns the loaded key of a KeyTable row for a From domain.
func (s *Signer) key(r keyRow, fromDomain string) (*Key, error) {
	if k, ok := s.keys[r.name]; ok {
		if r.domain == "%" {
			c := *k
			c.Domain = fromDomain
			return &c, nil
		}
		return k, nil
	}
	id := r.name + "\x00" + fromDomain
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.lazy[id]; ok {
		return k, nil
	}
	k, _, err := loadRow(r, fromDomain, s.cfg.RequireSafeKeys)
	if err != nil {
		return nil, err
	}
	s.lazy[id] = k
	return k, nil
}

// loadRow loads a KeyTable row's key; errors and warnings name the row.
func loadRow(r keyRow, fromDomain string, requireSafe bool) (*Key, string, error) {
	k, warning, err := loadKeyData(r, fromDomain, requireSafe)
	if err != nil {
		return nil, "", fmt.Errorf("%s: key table entry %q: %w", r.source, r.name, err)
	}
	if warning != "" {
		warning = fmt.Sprintf("%s: key %q: %s", r.source, r.name, warning)
	}
	return k, warning, nil
}

// loadKeyData loads a KeyTable row's key. A keydata starting with "/",
// "./" or "../" is a file, anything else is the key itself (opendkim.c
// dkimf_loadkey), and errors never quote it. A domain "%" and every "%"
// in a path starting with "/" stand for fromDomain; fromDomain "" (loading
// at start) leaves them as they are.
func loadKeyData(r keyRow, fromDomain string, requireSafe bool) (*Key, string, error) {
	domain, path := r.domain, r.keydata
	if fromDomain != "" && (domain == "%" || isPath(path) && strings.Contains(path, "%")) {
		// The From domain is attacker-written and becomes d= or part of
		// a file path: checked again here, right where it is put in, so
		// that "../x" never can be, whatever the caller checked.
		if !mailtext.ValidDomain(fromDomain) {
			return nil, "", fmt.Errorf("From domain %q is not a valid domain name: not substituted for %%", mailtext.Printable(fromDomain))
		}
		if domain == "%" {
			domain = fromDomain
		}
		if strings.HasPrefix(path, "/") {
			path = strings.ReplaceAll(path, "%", fromDomain)
		}
	}
	var signer crypto.Signer
	var warning, keyPath string
	var err error
	if isPath(path) {
		signer, warning, err = LoadKeyFile(path, requireSafe)
		keyPath = path
	} else {
		signer, warning, err = ParseKey([]byte(r.keydata))
		if err != nil {
			err = fmt.Errorf("inline key: %w", err) // never the key itself
		}
	}
	if err != nil {
		return nil, "", err
	}
	k, w := newKey(r.name, domain, r.selector, signer, r.source, keyPath)
	if w != "" {
		warning = strings.TrimPrefix(strings.Join([]string{warning, w}, "; "), "; ")
	}
	return k, warning, nil
}

func isPath(s string) bool {
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../")
}

// identityInDomain: RFC 6376 §3.5, the domain of i= must be d= or below it.
func identityInDomain(identity, d string) bool {
	at := strings.LastIndexByte(identity, '@')
	id := strings.ToLower(identity[at+1:])
	return id == d || strings.HasSuffix(id, "."+d)
}
