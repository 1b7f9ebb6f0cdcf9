package signer

import (
	"errors"
	"fmt"
	"strings"
)

// keyRow is one KeyTable row: "name domain:selector:keydata".
type keyRow struct {
	name, domain, selector, keydata string
	source                          string
}

// broken reports a bad line, kept by name only (parseKeyTable): a good
// row always has key data.
func (r keyRow) broken() bool { return r.keydata == "" }

// parseKeyTable reads an OpenDKIM KeyTable. The value splits at the first
// two colons; the third field is the rest (opendkim.c dkimf_add_signrequest).
// Names are case-sensitive and the first row of a name wins. The error
// lists every bad line; their names are kept as broken rows, so that the
// signing table's references to them are not reported a second time.
func parseKeyTable(spec string) (map[string]keyRow, error) {
	ds, err := parseDataset(spec, false)
	if err != nil {
		return nil, fmt.Errorf("key table %w", err)
	}
	lines, err := ds.lines()
	if err != nil {
		return nil, fmt.Errorf("key table: %w", err)
	}
	rows := map[string]keyRow{}
	var errs []error
	for _, l := range lines {
		if _, dup := rows[l.key]; dup {
			continue
		}
		parts := strings.SplitN(l.value, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			errs = append(errs, fmt.Errorf("%s: key table entry %q: want NAME DOMAIN:SELECTOR:KEYFILE", l.source, l.key))
			rows[l.key] = keyRow{name: l.key, source: l.source}
			continue
		}
		rows[l.key] = keyRow{name: l.key, domain: strings.ToLower(parts[0]), selector: parts[1], keydata: parts[2], source: l.source}
	}
	return rows, errors.Join(errs...)
}

// signRow is one SigningTable row: a pattern or key, a KeyTable name and
// an optional signing identity (i=) after a colon.
type signRow struct {
	pattern, keyName, identity string
	source                     string
}

// signingTable is an OpenDKIM SigningTable, plain or refile:.
type signingTable struct {
	refile bool
	rows   []signRow
	byKey  map[string]signRow // plain tables: lower-case key → first row
}

// parseSigningTable reads a SigningTable; the error lists every bad line.
func parseSigningTable(spec string, keys map[string]keyRow) (*signingTable, error) {
	ds, err := parseDataset(spec, true)
	if err != nil {
		return nil, fmt.Errorf("signing table %w", err)
	}
	lines, err := ds.lines()
	if err != nil {
		return nil, fmt.Errorf("signing table: %w", err)
	}
	t := &signingTable{refile: ds.kind == "refile", byKey: map[string]signRow{}}
	var errs []error
	for _, l := range lines {
		if l.value == "" {
			errs = append(errs, fmt.Errorf("%s: signing table entry %q has no key name", l.source, l.key))
			continue
		}
		name, identity, _ := strings.Cut(l.value, ":")
		if name != "%" && keys != nil { // nil: the key table is in LDAP, names are checked per message
			if _, ok := keys[name]; !ok {
				errs = append(errs, fmt.Errorf("%s: signing table entry %q names key %q, which is not in the key table", l.source, l.key, name))
				continue
			}
		}
		r := signRow{pattern: strings.ToLower(l.key), keyName: name, identity: identity, source: l.source}
		t.rows = append(t.rows, r)
		if _, dup := t.byKey[r.pattern]; !dup {
			t.byKey[r.pattern] = r
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// lookup returns the rows that apply to local@domain (lower case), first
// match only unless multiple.
//
// refile: every pattern is matched against the whole address in file
// order; only "*" is a wildcard (OpenDKIM turns patterns into anchored
// case-insensitive regular expressions with * as .*).
//
// Plain tables try, in this order (opendkim.c dkimf_apply_signtable):
// user@sub.example.com, sub.example.com, then per parent level
// user@.example.com and .example.com, user@.com and .com, then user@* and *.
func (t *signingTable) lookup(local, domain string, multiple bool) []signRow {
	var out []signRow
	if t.refile {
		addr := local + "@" + domain
		for _, r := range t.rows {
			if wildcardMatch(r.pattern, addr) {
				out = append(out, r)
				if !multiple {
					break
				}
			}
		}
		return out
	}
	for _, k := range signingKeys(local, domain) {
		if r, ok := t.byKey[k]; ok {
			out = append(out, r)
			if !multiple {
				break
			}
		}
	}
	return out
}

// signingKeys are the keys a plain signing table is tried with, in
// OpenDKIM's order (opendkim.c dkimf_apply_signtable): user@sub.example.com,
// sub.example.com, then per parent level user@.example.com and
// .example.com, user@.com and .com, then user@* and *. The same order
// applies to every data set type, LDAP included.
//
// Two keys per label: Lookup lets only a valid domain (127 labels at
// most) and an address of at most maxAddress octets through, so there
// are at most 256 keys of at most 254 octets, whatever the From says.
func signingKeys(local, domain string) []string {
	keys := []string{local + "@" + domain, domain}
	for i := strings.IndexByte(domain, '.'); i >= 0; {
		parent := domain[i:]
		keys = append(keys, local+"@"+parent, parent)
		j := strings.IndexByte(domain[i+1:], '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return append(keys, local+"@*", "*")
}

// wildcardMatch matches s against a pattern whose only wildcard is "*".
func wildcardMatch(p, s string) bool {
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
