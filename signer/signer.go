// Package signer decides which keys sign a message and signs it with DKIM
// as the message streams (RFC 6376, RFC 8463 for Ed25519). It reads
// OpenDKIM's KeyTable, SigningTable and InternalHosts unchanged.
package signer

import (
	"crypto"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
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
}

// InlineKey is a [[signing.key]] entry.
type InlineKey struct {
	Domain, Selector, PrivateKey string
}

// Key is a loaded private key with its domain and selector.
type Key struct {
	Name     string // KeyTable name, or domain/selector for inline keys
	Domain   string
	Selector string
	Signer   crypto.Signer
	Source   string // file:line or config key
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

	mu   sync.Mutex
	lazy map[string]*Key // "name\x00domain" → key for paths with %
}

// New loads everything the configuration names. Any unreadable file,
// bad line or unusable key is an error that names it; warnings (weak
// keys, no keys at all) are returned for the log.
func New(cfg Config) (*Signer, []string, error) {
	s := &Signer{cfg: cfg, keys: map[string]*Key{}, inline: map[string][]*Key{}, lazy: map[string]*Key{}, headers: map[string]bool{}}
	var warnings []string
	var err error
	s.internal, err = ParseHostEntries("signing.internal_hosts", cfg.InternalHosts)
	if err != nil {
		return nil, nil, err
	}
	if cfg.InternalHostsFile != "" {
		if err := s.internal.AddFile(cfg.InternalHostsFile); err != nil {
			return nil, nil, fmt.Errorf("internal hosts: %w", err)
		}
	}
	for _, h := range cfg.Headers {
		s.headers[strings.ToLower(h)] = true
	}
	if !s.headers["from"] {
		return nil, nil, fmt.Errorf("signing.headers: From must be signed (RFC 6376 §5.4)")
	}
	for _, h := range cfg.Oversign {
		s.headers[strings.ToLower(h)] = true
	}

	if cfg.KeyTable != "" {
		if s.rows, err = parseKeyTable(cfg.KeyTable); err != nil {
			return nil, nil, err
		}
		for _, r := range s.rows {
			if isPath(r.keydata) && strings.Contains(r.keydata, "%") {
				continue // loaded per From domain
			}
			k, w, err := loadRow(r, r.domain, cfg.RequireSafeKeys)
			if err != nil {
				return nil, nil, err
			}
			if w != "" {
				warnings = append(warnings, w)
			}
			s.keys[r.name] = k
		}
	}
	if cfg.SigningTable != "" {
		if cfg.KeyTable == "" {
			return nil, nil, fmt.Errorf("signing.signing_table needs signing.key_table")
		}
		if s.table, err = parseSigningTable(cfg.SigningTable, s.rows); err != nil {
			return nil, nil, err
		}
	} else if cfg.KeyTable != "" {
		warnings = append(warnings, "signing.key_table is set without signing.signing_table: its keys are never used")
	}
	for i, ik := range cfg.Keys {
		where := fmt.Sprintf("signing.key[%d]", i)
		if ik.Domain == "" || ik.Selector == "" || ik.PrivateKey == "" {
			return nil, nil, fmt.Errorf("%s: domain, selector and private_key are all required", where)
		}
		signer, w, err := LoadKeyFile(ik.PrivateKey, cfg.RequireSafeKeys)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		if w != "" {
			warnings = append(warnings, fmt.Sprintf("%s: %s", ik.PrivateKey, w))
		}
		d := strings.ToLower(strings.TrimSuffix(ik.Domain, "."))
		s.inline[d] = append(s.inline[d], &Key{Name: d + "/" + ik.Selector, Domain: d, Selector: ik.Selector, Signer: signer, Source: where})
	}
	if !s.HasKeys() {
		warnings = append(warnings, "no signing keys configured: nothing will be signed (add [[signing.key]] or key_table/signing_table)")
	}
	return s, warnings, nil
}

// HasKeys reports whether anything can ever be signed.
func (s *Signer) HasKeys() bool { return s.table != nil || len(s.inline) > 0 }

// Internal reports whether a client is an internal host, and the entry
// that matched.
func (s *Signer) Internal(host string, ip netip.Addr) (bool, string) {
	return s.internal.Match(host, ip)
}

// Lookup returns the signatures a message from local@domain gets: the
// signing table's matches first, and if it has none, the inline keys of
// the domain. An error means a key could not be loaded: the caller must
// tempfail rather than send the message unsigned.
func (s *Signer) Lookup(local, domain string) ([]Request, error) {
	local, domain = strings.ToLower(local), strings.ToLower(strings.TrimSuffix(domain, "."))
	var reqs []Request
	if s.table != nil {
		for _, row := range s.table.lookup(local, domain, s.cfg.MultipleSignatures) {
			name := row.keyName
			if name == "%" {
				name = domain
			}
			r, ok := s.rows[name]
			if !ok {
				return nil, fmt.Errorf("%s: key %q is not in the key table", row.source, name)
			}
			k, err := s.key(r, domain)
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
	}
	if len(reqs) == 0 {
		for _, k := range s.inline[domain] {
			reqs = append(reqs, Request{Key: k, Domain: k.Domain})
		}
	}
	return reqs, nil
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

// loadRow loads a KeyTable row's key. A keydata starting with "/", "./"
// or "../" is a file (with % replaced by the domain); anything else is the
// key itself (opendkim.c dkimf_loadkey).
func loadRow(r keyRow, fromDomain string, requireSafe bool) (*Key, string, error) {
	domain := r.domain
	if domain == "%" {
		domain = fromDomain
	}
	var signer crypto.Signer
	var warning string
	var err error
	if isPath(r.keydata) {
		path := r.keydata
		if strings.HasPrefix(path, "/") {
			path = strings.ReplaceAll(path, "%", domain)
		}
		signer, warning, err = LoadKeyFile(path, requireSafe)
	} else {
		signer, warning, err = ParseKey([]byte(r.keydata))
		if err != nil {
			err = fmt.Errorf("inline key: %w", err) // never the key itself
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: key table entry %q: %w", r.source, r.name, err)
	}
	if warning != "" {
		warning = fmt.Sprintf("%s: key %q: %s", r.source, r.name, warning)
	}
	return &Key{Name: r.name, Domain: domain, Selector: r.selector, Signer: signer, Source: r.source}, warning, nil
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
