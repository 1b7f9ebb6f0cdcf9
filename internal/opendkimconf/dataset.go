package opendkimconf

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// dataset is an OpenDKIM data set reference, typed the way
// opendkim-db.c dkimf_db_open types it: a "type:" prefix counts only when
// its colon comes before the first comma; without one, a name ending in
// ".db" is Berkeley DB, a name starting with "/" a flat file, and
// anything else a comma-separated list.
type dataset struct {
	kind string // "file", "refile", "csl", "db", "ldap", "dsn", ...; "?" unknown
	rest string // after the prefix: the path, the list, the URL
	spec string // as written
}

var datasetTypes = map[string]string{
	"csl": "csl", "file": "file", "refile": "refile", "db": "db", "dsn": "dsn",
	"ldap": "ldap", "ldapi": "ldap", "ldaps": "ldap", "lua": "lua",
	"memcache": "memcache", "repute": "repute", "socket": "socket", "mdb": "mdb",
	"erlang": "erlang",
}

func parseDataset(spec string) dataset {
	colon := strings.IndexByte(spec, ':')
	comma := strings.IndexByte(spec, ',')
	if colon >= 0 && (comma < 0 || colon < comma) {
		prefix := strings.ToLower(spec[:colon])
		kind, ok := datasetTypes[prefix]
		if !ok {
			kind = "?"
		}
		return dataset{kind: kind, rest: spec[colon+1:], spec: spec}
	}
	switch {
	case strings.HasSuffix(spec, ".db"):
		return dataset{kind: "db", rest: spec, spec: spec}
	case strings.HasPrefix(spec, "/"):
		return dataset{kind: "file", rest: spec, spec: spec}
	}
	return dataset{kind: "csl", rest: spec, spec: spec}
}

// unsupported says why vouch cannot read a data set of this kind, or ""
// when it can (flat files and lists).
func (d dataset) unsupported() string {
	switch d.kind {
	case "file", "csl":
		return ""
	case "refile":
		return "refile: is only supported for the SigningTable"
	case "ldap":
		return "ldap: data sets are not supported yet (a later vouch release reads keys from LDAP)"
	case "db":
		return "Berkeley DB data sets are not supported: dump it to a flat file (db_dump, or makemap -u)"
	case "dsn":
		return "SQL (OpenDBX dsn:) data sets are not supported"
	case "?":
		prefix, _, _ := strings.Cut(d.spec, ":")
		return fmt.Sprintf("%q is not an OpenDKIM data set type: OpenDKIM refuses to start", prefix)
	}
	return d.kind + ": data sets are not supported"
}

// keys returns the keys of a flat-file or list data set, the way
// dkimf_db_open reads them: list items split at "," and trimmed (the part
// before "=" is the key); file lines cut at the first "#", trimmed, and
// the key is the first word.
func (d dataset) keys() ([]string, error) {
	var out []string
	switch d.kind {
	case "csl":
		for _, item := range strings.Split(d.rest, ",") {
			k, _, _ := strings.Cut(item, "=")
			if k = strings.TrimSpace(k); k != "" {
				out = append(out, k)
			}
		}
		return out, nil
	case "file":
		f, err := os.Open(d.rest)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			if fields := strings.Fields(line); len(fields) > 0 {
				out = append(out, fields[0])
			}
		}
		return out, sc.Err()
	}
	return nil, fmt.Errorf("%s", d.unsupported())
}

// refileAsFile: where OpenDKIM looks a data set up by a whole key (the
// KeyTable, InternalHosts), a refile: whose patterns have no wildcard
// finds exactly what the same file read as file: finds. dkimf_mkregexp
// anchors each pattern, turns "*" into ".*", escapes "." and "+", and
// copies every other character into a POSIX regular expression, so
// only keys free of "*" and the other regular-expression characters
// are literal.
func (d dataset) refileAsFile() (string, error) {
	keys, err := dataset{kind: "file", rest: d.rest}.keys()
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if strings.ContainsAny(k, "*?[](){}|^$\\") {
			return "", fmt.Errorf("%q is a pattern, not a name", k)
		}
	}
	return "file:" + d.rest, nil
}
