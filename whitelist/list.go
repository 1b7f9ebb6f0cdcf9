// Package whitelist reads MDaemon-style exception files (ReverseXcpt.dat,
// HeloLookupWL.dat, MailLookupWL.dat) and matches client IPs, host names
// and sender addresses against them.
//
// Grammar, one entry per line (liberal: what cannot be read is skipped and
// reported with file:line, the rest of the file still counts):
//
//	# comment, ; comment          whole-line comments
//	192.0.2.1   ; note            trailing comment after whitespace (# or ;)
//	192.0.2.1, 2001:db8::1        IPv4 / IPv6 address
//	192.0.2.0/24, 2001:db8::/32   CIDR
//	192.168.*.*, 10.0.0.1??, #.#.#.#   MDaemon IPv4 wildcards: * any digits,
//	                              ? one digit, # a whole octet; a trailing *
//	                              after a dot covers the remaining octets
//	mail.example.com              host or domain name, exact
//	*.example.com, mail?.example.net   host globs (* any run, ? one char);
//	                              *.example.com matches subdomains only
//	user@example.com              sender address, exact
//	*@example.com, j*@example.com address globs
//	from user@example.com         MDaemon's "from" prefix, ignored
//
// Matching is case-insensitive and does not scan a list of patterns:
// networks are looked up in one map per prefix length, names and
// addresses in maps, and globs only within the bucket of their literal
// domain suffix.
package whitelist

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"vouch/internal/netset"
)

// Entry is one line of a list, for logs and `vouch explain`.
type Entry struct {
	File string
	Line int
	Text string
}

func (e Entry) String() string { return fmt.Sprintf("%s:%d (%s)", e.File, e.Line, e.Text) }

// Problem is a line that was skipped, or a file that could not be read.
type Problem struct {
	File   string
	Line   int // 0 for the whole file
	Reason string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return p.File + ": " + p.Reason
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Reason)
}

// List is a parsed exception file. The zero value and nil are empty lists.
// A List is immutable once built; reloads build a new one.
type List struct {
	file     string
	n        int
	prefixes netset.Prefixes[Entry]
	ipGlobs  []ipGlob
	hosts    map[string]Entry
	hostGlob map[string][]glob // by bucket (see bucketOf)
	addrs    map[string]Entry
	addrDom  map[string][]glob // address globs by domain ("" if the domain has wildcards)
}

type glob struct {
	pattern string
	entry   Entry
}

// ipGlob is an IPv4 wildcard with a set of allowed values per octet.
type ipGlob struct {
	octets [4][4]uint64 // 256-bit sets
	entry  Entry
}

// Len is the number of entries.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return l.n
}

// File is the path the list was read from.
func (l *List) File() string {
	if l == nil {
		return ""
	}
	return l.file
}

// Load reads a file. A missing file is an empty list and one problem; a
// file that exists but cannot be read is an error (a reload then keeps the
// list it had).
func Load(path string) (*List, []Problem, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &List{file: path}, []Problem{{File: path, Reason: "does not exist; using an empty list"}}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads a list; name is used in entries and problems.
func Parse(name string, r io.Reader) (*List, []Problem, error) {
	l := &List{file: name}
	var problems []Problem
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		if lineNo == 1 {
			// Windows editors may start a UTF-8 file with a byte order mark.
			line = strings.TrimPrefix(line, "\ufeff")
		}
		text := stripComment(line)
		if text == "" {
			continue
		}
		fields := strings.Fields(text)
		if strings.EqualFold(fields[0], "from") && len(fields) > 1 {
			fields = fields[1:]
		}
		tok := fields[0]
		if len(fields) > 1 {
			// "this is garbage" is not the entry "this": a line is one
			// entry, and a line that is not is ignored whole.
			problems = append(problems, Problem{name, lineNo, fmt.Sprintf("%q is not one entry (text after %q); the line is ignored", strings.Join(fields, " "), tok)})
			continue
		}
		e := Entry{File: name, Line: lineNo, Text: tok}
		if err := l.add(tok, e); err != nil {
			problems = append(problems, Problem{name, lineNo, err.Error()})
			continue
		}
		l.n++
	}
	if err := sc.Err(); err != nil {
		return nil, problems, fmt.Errorf("%s: %w", name, err)
	}
	return l, problems, nil
}

// stripComment removes whole-line comments (# or ; first; "#" followed by
// a dot is an MDaemon octet wildcard, not a comment) and trailing comments
// that follow whitespace.
func stripComment(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, ";") || strings.HasPrefix(s, "#") && !strings.HasPrefix(s, "#.") {
		return ""
	}
	for i := 1; i < len(s); i++ {
		if (s[i] == '#' || s[i] == ';') && (s[i-1] == ' ' || s[i-1] == '\t') {
			return strings.TrimSpace(s[:i])
		}
	}
	return s
}

func (l *List) add(tok string, e Entry) error {
	tok = strings.ToLower(tok)
	switch {
	case strings.Contains(tok, "@"):
		return l.addAddress(tok, e)
	case strings.Contains(tok, "/"):
		p, err := netip.ParsePrefix(tok)
		if err != nil {
			return fmt.Errorf("bad CIDR %q", tok)
		}
		l.addPrefix(p, e) // ::ffff:192.0.2.0/120 is stored as 192.0.2.0/24
		return nil
	}
	if ip, err := netip.ParseAddr(tok); err == nil {
		ip = ip.Unmap()
		l.addPrefix(netip.PrefixFrom(ip, ip.BitLen()), e)
		return nil
	}
	if isIPGlob(tok) {
		return l.addIPGlob(tok, e)
	}
	return l.addHost(tok, e)
}

func (l *List) addPrefix(p netip.Prefix, e Entry) {
	if _, dup := l.prefixes.Get(p); !dup {
		l.prefixes.Set(p, e) // the first line wins, as in OpenDKIM's tables
	}
}

// isIPGlob: digits, dots and wildcards only, with at least one wildcard.
func isIPGlob(s string) bool {
	return strings.ContainsAny(s, "*?#") && strings.Trim(s, "0123456789.*?#") == ""
}

func (l *List) addIPGlob(tok string, e Entry) error {
	parts := strings.Split(tok, ".")
	if len(parts) < 4 && parts[len(parts)-1] == "*" {
		for len(parts) < 4 {
			parts = append(parts, "*")
		}
	}
	if len(parts) != 4 {
		return fmt.Errorf("bad IP wildcard %q: want four octets", tok)
	}
	var g ipGlob
	g.entry = e
	literal := 0 // leading literal octets, for the prefix shortcut
	allStar := true
	for i, p := range parts {
		if p == "" || len(p) > 3 {
			return fmt.Errorf("bad IP wildcard %q: octet %q", tok, p)
		}
		n := 0
		for v := 0; v < 256; v++ {
			if octetMatch(p, fmt.Sprint(v)) {
				g.octets[i][v/64] |= 1 << (v % 64)
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("bad IP wildcard %q: octet %q matches nothing", tok, p)
		}
		isStar := n == 256
		if !isStar && allStar && i == literal && n == 1 {
			literal++
			continue
		}
		if !isStar {
			allStar = false
		}
	}
	// 192.168.*.* is 192.168.0.0/16: store it as a network.
	if allStar {
		var b [4]byte
		for i := 0; i < literal; i++ {
			for v := 0; v < 256; v++ {
				if g.octets[i][v/64]&(1<<(v%64)) != 0 {
					b[i] = byte(v)
				}
			}
		}
		l.addPrefix(netip.PrefixFrom(netip.AddrFrom4(b), literal*8), e)
		return nil
	}
	l.ipGlobs = append(l.ipGlobs, g)
	return nil
}

// octetMatch matches one octet pattern against a decimal octet: * any run
// of digits, ? one digit, # the whole octet.
func octetMatch(p, s string) bool {
	if p == "#" {
		return true
	}
	return globMatch(p, s)
}

func (l *List) addHost(tok string, e Entry) error {
	tok = strings.TrimSuffix(tok, ".")
	if tok == "" || strings.Trim(tok, hostChars) != "" {
		return fmt.Errorf("%q is not an IP address, network, host name or address", tok)
	}
	if looksNumeric(tok) {
		// 192.168.1.256, 10.1.2: a mistyped IP address, not a host name
		// (no top-level domain is all digits).
		return fmt.Errorf("bad IP address %q", tok)
	}
	if !strings.ContainsAny(tok, "*?") {
		if l.hosts == nil {
			l.hosts = map[string]Entry{}
		}
		if _, dup := l.hosts[tok]; !dup {
			l.hosts[tok] = e
		}
		return nil
	}
	if l.hostGlob == nil {
		l.hostGlob = map[string][]glob{}
	}
	b := bucketOf(tok)
	l.hostGlob[b] = append(l.hostGlob[b], glob{tok, e})
	return nil
}

func (l *List) addAddress(tok string, e Entry) error {
	local, domain, _ := strings.Cut(tok, "@")
	domain = strings.TrimSuffix(domain, ".")
	if local == "" || domain == "" || strings.Trim(domain, hostChars) != "" {
		return fmt.Errorf("bad address %q", tok)
	}
	tok = local + "@" + domain
	if !strings.ContainsAny(tok, "*?") {
		if l.addrs == nil {
			l.addrs = map[string]Entry{}
		}
		if _, dup := l.addrs[tok]; !dup {
			l.addrs[tok] = e
		}
		return nil
	}
	key := domain
	if strings.ContainsAny(domain, "*?") {
		key = ""
	}
	if l.addrDom == nil {
		l.addrDom = map[string][]glob{}
	}
	l.addrDom[key] = append(l.addrDom[key], glob{tok, e})
	return nil
}

const hostChars = "abcdefghijklmnopqrstuvwxyz0123456789-_.*?"

// looksNumeric reports whether the last label of a name is all digits.
func looksNumeric(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// bucketOf is the longest run of whole labels at the end of a glob that
// holds no wildcard: "*.example.com" and "mail?.example.com" go to
// "example.com", "mail*" to "". A name is only compared with the globs in
// the buckets of its own label suffixes.
func bucketOf(pattern string) string {
	i := strings.LastIndexAny(pattern, "*?")
	rest := pattern[i+1:]
	if j := strings.IndexByte(rest, '.'); j >= 0 {
		return rest[j+1:]
	}
	return ""
}

// MatchIP reports the entry covering ip.
func (l *List) MatchIP(ip netip.Addr) (Entry, bool) {
	if l == nil || !ip.IsValid() {
		return Entry{}, false
	}
	ip = ip.Unmap()
	if e, _, ok := l.prefixes.Lookup(ip); ok {
		return e, true
	}
	if ip.Is4() {
		b := ip.As4()
		for _, g := range l.ipGlobs {
			if g.octets[0][b[0]/64]&(1<<(b[0]%64)) != 0 && g.octets[1][b[1]/64]&(1<<(b[1]%64)) != 0 &&
				g.octets[2][b[2]/64]&(1<<(b[2]%64)) != 0 && g.octets[3][b[3]/64]&(1<<(b[3]%64)) != 0 {
				return g.entry, true
			}
		}
	}
	return Entry{}, false
}

// MatchHost reports the entry matching a host or domain name.
func (l *List) MatchHost(name string) (Entry, bool) {
	if l == nil || name == "" {
		return Entry{}, false
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if e, ok := l.hosts[name]; ok {
		return e, true
	}
	if len(l.hostGlob) == 0 {
		return Entry{}, false
	}
	for suffix := name; ; {
		i := strings.IndexByte(suffix, '.')
		if i < 0 {
			suffix = ""
		} else {
			suffix = suffix[i+1:]
		}
		for _, g := range l.hostGlob[suffix] {
			if globMatch(g.pattern, name) {
				return g.entry, true
			}
		}
		if suffix == "" {
			return Entry{}, false
		}
	}
}

// MatchAddress reports the entry matching a sender address: an address
// entry, or a host entry matching its domain.
func (l *List) MatchAddress(addr string) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	addr = strings.ToLower(addr)
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return Entry{}, false
	}
	domain := strings.TrimSuffix(addr[at+1:], ".")
	addr = addr[:at+1] + domain
	if e, ok := l.addrs[addr]; ok {
		return e, true
	}
	for _, key := range []string{domain, ""} {
		for _, g := range l.addrDom[key] {
			if globMatch(g.pattern, addr) {
				return g.entry, true
			}
		}
	}
	return l.MatchHost(domain)
}

// globMatch matches s against a pattern of literal bytes, * (any run) and
// ? (one byte). Both are lower case.
func globMatch(p, s string) bool {
	star, starS := -1, 0
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(p) && p[i] == '*': // before the literal case: s may hold a '*' too
			star, starS = i, j
			i++
		case i < len(p) && (p[i] == '?' || p[i] == s[j]):
			i++
			j++
		case star >= 0:
			i = star + 1
			starS++
			j = starS
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}
