package whitelist

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sampleFile is a ReverseXcpt.dat as admins write them: comments of both
// kinds, Windows and Unix line ends, every entry form, some typos, and no
// newline at the end. Line numbers are in the comments on the right.
var sampleFile = strings.Join([]string{
	"\ufeff# ReverseXcpt.dat: partners whose PTR is broken\r", // 1 (BOM, CRLF)
	"; maintained by the postmaster, one entry per line\r",    // 2
	"\r",                                 // 3 blank
	"192.0.2.10\r",                       // 4
	"192.0.2.11   ; old relay\r",         // 5 trailing ; comment
	"2001:db8::25\t# v6 relay\r",         // 6 trailing # comment after a tab
	"198.51.100.77/24\r",                 // 7 CIDR, host bits set
	"2001:DB8:aa:bb::1/48",               // 8 v6 CIDR, host bits set
	"192.168.*.*",                        // 9 = 192.168.0.0/16
	"10.0.0.1??",                         // 10 10.0.0.100-199
	"10.1.*.239",                         // 11
	"#.#.#.#",                            // 12 any IPv4 (not a comment)
	"  172.16.*  ",                       // 13 = 172.16.0.0/16
	"Mail.Partner.Example",               // 14
	"relay.example.net.",                 // 15 trailing dot
	"*.example.com",                      // 16
	"mail?.example.net",                  // 17
	"User@Example.COM",                   // 18
	"*@example.org",                      // 19
	"j*@example.net",                     // 20
	"from boss@x.test",                   // 21
	"300.1.1.1/8",                        // 22 bad: CIDR
	"999.*.*.*",                          // 23 bad: octet matches nothing
	"exa mple",                           // 24 bad: two words, ignored whole
	"@nodomain",                          // 25 bad: no local part
	"bad!host",                           // 26 bad
	"::ffff:203.0.113.0/120 # mapped v4", // 27 = 203.0.113.0/24
	"192.0.2.10",                         // 28 duplicate of 4
	"10.0.0.1",                           // 29
	"192.168.1.256",                      // 30 bad: not an IP, not a name
	"\t",                                 // 31 blank
	"# the end",                          // 32
	"example.org",                        // 33, no final newline
}, "\n")

const sampleName = "ReverseXcpt.dat"

// matchFile is sampleFile without the catch-all #.#.#.# (line 12 becomes a
// comment), so that misses can be tested. Line numbers do not change.
var matchFile = strings.Replace(sampleFile, "#.#.#.#", "; #.#.#.# disabled", 1)

func mustParse(t testing.TB, text string) *List {
	t.Helper()
	l, _, err := Parse(sampleName, strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return l
}

func TestParseSample(t *testing.T) {
	l, problems, err := Parse(sampleName, strings.NewReader(sampleFile))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, fmt.Sprintf("%s:%d", p.File, p.Line))
		if !strings.HasPrefix(p.String(), fmt.Sprintf("%s:%d: ", p.File, p.Line)) || p.Reason == "" {
			t.Errorf("Problem.String() = %q", p.String())
		}
	}
	want := []string{
		"ReverseXcpt.dat:22", "ReverseXcpt.dat:23", "ReverseXcpt.dat:24",
		"ReverseXcpt.dat:25", "ReverseXcpt.dat:26", "ReverseXcpt.dat:30",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems at %q, want %q\n%v", got, want, problems)
	}
	// Lines 4-21, 27, 28 (a duplicate still counts as a line read), 29
	// and 33.
	if l.Len() != 22 {
		t.Errorf("Len() = %d, want 22", l.Len())
	}
	if _, ok := l.MatchHost("exa"); ok {
		t.Error(`line 24 "exa mple" was kept as "exa"`)
	}
	if l.File() != sampleName {
		t.Errorf("File() = %q", l.File())
	}
	// The catch-all line 12 is an entry, not a comment.
	if e, ok := l.MatchIP(netip.MustParseAddr("203.0.114.1")); !ok || e.Line != 12 || e.Text != "#.#.#.#" {
		t.Errorf("MatchIP(203.0.114.1) = %v, %v; want line 12", e, ok)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		line    string
		entries int
		problem bool
	}{
		{"", 0, false},
		{"   \t ", 0, false},
		{"# comment", 0, false},
		{"#comment", 0, false},
		{"; comment", 0, false},
		{"1.2.3.4;no-space", 0, true},
		{"1.2.3.4 ; ok", 1, false},
		{"1.2.3.4 trailing words", 0, true},
		{"this is garbage !!", 0, true},
		{"from", 1, false}, // a host called "from"
		{"FROM a@b.test", 1, false},
		{"1.2.3.4/33", 0, true},
		{"2001:db8::/129", 0, true},
		{"1.2.3", 0, true},
		{"1.2.3.4.5", 0, true},
		{"256.1.1.1", 0, true},
		{"1.2.3.*.5", 0, true},
		{"1.2.3.1234", 0, true},
		{"1.2.3.4?", 1, false}, // 1.2.3.40-49
		{"1.2.*", 1, false},
		{"1.*.3", 0, true},
		{"*", 1, false}, // = *.*.*.*
		{"2001:db8::*", 0, true},
		{"user@", 0, true},
		{"@example.com", 0, true},
		{"a@b@c.test", 0, true},
		{"a@exa!mple.test", 0, true},
		{"ex ample", 0, true},
		{"under_score.example", 1, false},
		{"café.example", 0, true},
		{"fe80::1%eth0", 1, false},
	}
	for _, tt := range tests {
		l, problems, err := Parse("f", strings.NewReader(tt.line))
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if l.Len() != tt.entries || (len(problems) > 0) != tt.problem {
			t.Errorf("%q: %d entries, problems %v; want %d entries, problem %v", tt.line, l.Len(), problems, tt.entries, tt.problem)
		}
	}
}

func TestParseLongLine(t *testing.T) {
	l, _, err := Parse("f", strings.NewReader("1.2.3.4\n"+strings.Repeat("a", 100_000)+"\n"))
	if err == nil || l != nil {
		t.Errorf("Parse of a 100 kB line = %v, %v; want an error and no list", l, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	l, problems, err := Load(filepath.Join(dir, "missing.dat"))
	if err != nil || l == nil || l.Len() != 0 || len(problems) != 1 || problems[0].Line != 0 {
		t.Errorf("Load(missing) = %v, %v, %v", l, problems, err)
	}
	if _, _, err := Load(dir); err == nil {
		t.Errorf("Load(directory) succeeded")
	}
	p := filepath.Join(dir, "ok.dat")
	if err := os.WriteFile(p, []byte(sampleFile), 0o644); err != nil {
		t.Fatal(err)
	}
	l, problems, err = Load(p)
	if err != nil || l.Len() != 22 || len(problems) != 6 || l.File() != p {
		t.Errorf("Load = %d entries, %d problems, %v", l.Len(), len(problems), err)
	}
	if e, ok := l.MatchIP(netip.MustParseAddr("192.0.2.10")); !ok || e.File != p || e.Line != 4 || e.Text != "192.0.2.10" {
		t.Errorf("entry = %v", e)
	}
}

func TestNilList(t *testing.T) {
	var l *List
	if l.Len() != 0 || l.File() != "" {
		t.Error("nil list not empty")
	}
	if _, ok := l.MatchIP(netip.MustParseAddr("1.2.3.4")); ok {
		t.Error("nil MatchIP")
	}
	if _, ok := l.MatchHost("a.test"); ok {
		t.Error("nil MatchHost")
	}
	if _, ok := l.MatchAddress("a@a.test"); ok {
		t.Error("nil MatchAddress")
	}
	var zero List
	if _, ok := zero.MatchHost("a.test"); ok {
		t.Error("zero MatchHost")
	}
}

func TestMatchIP(t *testing.T) {
	l := mustParse(t, matchFile)
	tests := []struct {
		ip   string
		line int // 0: no match
	}{
		{"192.0.2.10", 4},
		{"::ffff:192.0.2.10", 4}, // IPv4-mapped input
		{"192.0.2.11", 5},
		{"192.0.2.12", 0},
		{"2001:db8::25", 6},
		{"2001:db8::26", 0},
		{"198.51.100.0", 7},
		{"198.51.100.255", 7},
		{"198.51.101.77", 0},
		{"2001:db8:aa::", 8},
		{"2001:db8:aa:ffff:ffff::9", 8},
		{"2001:db8:ab::1", 0},
		{"192.168.0.1", 9},
		{"192.168.255.255", 9},
		{"192.169.0.1", 0},
		{"10.0.0.100", 10},
		{"10.0.0.150", 10},
		{"10.0.0.199", 10},
		{"10.0.0.200", 0},
		{"10.0.0.10", 0},
		{"10.0.0.1", 29},
		{"10.0.0.2", 0},
		{"10.1.0.239", 11},
		{"10.1.255.239", 11},
		{"10.1.7.238", 0},
		{"10.2.7.239", 0},
		{"172.16.44.5", 13},
		{"172.17.0.1", 0},
		{"203.0.113.7", 27}, // the ::ffff:203.0.113.0/120 line
		{"::ffff:203.0.113.7", 27},
		{"203.0.112.7", 0},
		{"::c000:20a", 0}, // IPv4-compatible, not mapped: a v6 address
		{"2001:db8::25%eth0", 6},
	}
	for _, tt := range tests {
		e, ok := l.MatchIP(netip.MustParseAddr(tt.ip))
		if ok != (tt.line != 0) || e.Line != tt.line {
			t.Errorf("MatchIP(%s) = line %d, %v; want line %d", tt.ip, e.Line, ok, tt.line)
		}
		if ok && e.File != sampleName {
			t.Errorf("MatchIP(%s): File %q", tt.ip, e.File)
		}
	}
	if _, ok := l.MatchIP(netip.Addr{}); ok {
		t.Error("MatchIP(zero Addr) matched")
	}
}

// TestMatchIPForms tests each network form on its own.
func TestMatchIPForms(t *testing.T) {
	tests := []struct {
		entry string
		in    []string
		out   []string
	}{
		{"192.168.*.*", []string{"192.168.0.0", "192.168.255.255"}, []string{"192.167.255.255", "192.169.0.0", "2001:db8::1"}},
		{"192.168.*.239", []string{"192.168.0.239", "192.168.255.239"}, []string{"192.168.1.238", "192.168.1.23", "192.169.1.239"}},
		{"10.0.0.1??", []string{"10.0.0.100", "10.0.0.199"}, []string{"10.0.0.1", "10.0.0.10", "10.0.0.200", "10.0.1.100"}},
		{"#.#.#.#", []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "::ffff:1.2.3.4"}, []string{"2001:db8::1", "::1"}},
		{"*.*.*.*", []string{"1.2.3.4"}, []string{"2001:db8::1"}},
		{"*", []string{"1.2.3.4"}, []string{"2001:db8::1"}}, // an IP wildcard, not a host glob
		{"172.16.*", []string{"172.16.0.1", "172.16.255.255"}, []string{"172.15.255.255", "172.17.0.0"}},
		{"192.*", []string{"192.0.0.1"}, []string{"193.0.0.1"}},
		{"1*.2.3.4", []string{"1.2.3.4", "10.2.3.4", "199.2.3.4"}, []string{"2.2.3.4", "20.2.3.4", "1.2.3.5"}},
		{"1.2.3.#", []string{"1.2.3.0", "1.2.3.255"}, []string{"1.2.4.0"}},
		{"1.2.3.?", []string{"1.2.3.0", "1.2.3.9"}, []string{"1.2.3.10"}},
		{"10.0.0.0/8", []string{"10.0.0.0", "10.255.255.255", "::ffff:10.1.1.1"}, []string{"11.0.0.0", "9.255.255.255"}},
		{"10.9.8.7/8", []string{"10.0.0.1"}, []string{"11.0.0.1"}},
		{"0.0.0.0/0", []string{"1.2.3.4", "255.255.255.255"}, []string{"2001:db8::1"}},
		{"192.0.2.1/32", []string{"192.0.2.1"}, []string{"192.0.2.0", "192.0.2.2"}},
		{"2001:db8::/32", []string{"2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"}, []string{"2001:db9::", "2001:db7::1", "32.1.13.184"}},
		{"2001:db8:1:2::/64", []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::1"}, []string{"2001:db8:1:3::1"}},
		{"2001:db8::1/128", []string{"2001:db8::1"}, []string{"2001:db8::2"}},
		{"::/0", []string{"2001:db8::1", "::1"}, []string{"1.2.3.4", "::ffff:1.2.3.4"}},
		{"::ffff:10.0.0.0/104", []string{"10.1.2.3", "::ffff:10.1.2.3"}, []string{"11.0.0.0"}},
		{"::ffff:192.0.2.1", []string{"192.0.2.1"}, []string{"192.0.2.2"}},
	}
	for _, tt := range tests {
		l := mustParse(t, "# x\n"+tt.entry+"\n")
		if l.Len() != 1 {
			t.Errorf("%q: %d entries", tt.entry, l.Len())
			continue
		}
		for _, s := range tt.in {
			if e, ok := l.MatchIP(netip.MustParseAddr(s)); !ok || e.Line != 2 || e.Text != strings.ToLower(tt.entry) {
				t.Errorf("%q does not match %s (%v)", tt.entry, s, e)
			}
		}
		for _, s := range tt.out {
			if e, ok := l.MatchIP(netip.MustParseAddr(s)); ok {
				t.Errorf("%q matches %s (%v)", tt.entry, s, e)
			}
		}
	}
}

func TestMatchHost(t *testing.T) {
	l := mustParse(t, matchFile)
	tests := []struct {
		name string
		line int
	}{
		{"mail.partner.example", 14},
		{"MAIL.Partner.EXAMPLE.", 14},
		{"partner.example", 0},
		{"x.mail.partner.example", 0},
		{"relay.example.net", 15},
		{"relay.example.net.", 15},
		{"RELAY.EXAMPLE.NET", 15},
		{"a.example.com", 16},
		{"a.b.example.com", 16},
		{"A.Example.Com.", 16},
		{"example.com", 0},
		{"xexample.com", 0},
		{"example.com.evil.test", 0},
		{"a.example.com.evil.test", 0},
		{"mail1.example.net", 17},
		{"MAILX.example.net", 17},
		{"mail.example.net", 0},
		{"mail12.example.net", 0},
		{"x.mail1.example.net", 0},
		{"exa", 0}, // line 24 "exa mple" is ignored whole // first word of the "exa mple" line
		{"mple", 0},
		{"example.org", 33},
		{"www.example.org", 0},
		{"", 0},
		{".", 0},
		{"192.0.2.10", 0}, // IP entries are not names
		{"bad!host", 0},
		{"nodomain", 0},
	}
	for _, tt := range tests {
		e, ok := l.MatchHost(tt.name)
		if ok != (tt.line != 0) || e.Line != tt.line {
			t.Errorf("MatchHost(%q) = line %d, %v; want line %d", tt.name, e.Line, ok, tt.line)
		}
	}
}

func TestMatchHostGlobs(t *testing.T) {
	tests := []struct {
		entry   string
		in, out []string
	}{
		{"*.example.com", []string{"a.example.com", "a.b.example.com", "-.example.com"}, []string{"example.com", "aexample.com", "a.example.com.au"}},
		{"*example.com", []string{"example.com", "myexample.com", "a.example.com"}, []string{"example.co", "example.com.au"}},
		{"mail?.example.net", []string{"mail1.example.net", "mailx.example.net"}, []string{"mail.example.net", "mail10.example.net"}},
		{"mail*", []string{"mail", "mail.example.net", "mailer"}, []string{"email", "xmail.example"}},
		{"mail.*.example", []string{"mail.a.example", "mail.a.b.example"}, []string{"mail.example", "smtp.a.example"}},
		{"*.example.*", []string{"a.example.com", "a.example.co.uk"}, []string{"example.com", "a.example"}},
		{"m*x?.ex*le.org", []string{"mx1.example.org", "mailbox2.exle.org"}, []string{"mx.example.org", "mx1.example.com"}},
	}
	for _, tt := range tests {
		l := mustParse(t, tt.entry)
		for _, s := range tt.in {
			if e, ok := l.MatchHost(s); !ok || e.Line != 1 {
				t.Errorf("%q does not match %q", tt.entry, s)
			}
		}
		for _, s := range tt.out {
			if _, ok := l.MatchHost(s); ok {
				t.Errorf("%q matches %q", tt.entry, s)
			}
		}
	}
}

func TestMatchAddress(t *testing.T) {
	l := mustParse(t, matchFile)
	tests := []struct {
		addr string
		line int
	}{
		{"user@example.com", 18},
		{"USER@EXAMPLE.COM", 18},
		{"user@example.com.", 18},
		{"other@example.com", 0},
		{"user@sub.example.com", 16}, // host glob on the domain
		{"anyone@example.org", 19},   // address glob before the host line 33
		{"anyone@www.example.org", 0},
		{"john@example.net", 20},
		{"j@example.net", 20},
		{"J.Doe@Example.NET", 20},
		{"j*x@example.net", 20}, // a '*' in the address itself
		{"bob@example.net", 0},
		{"boss@x.test", 21}, // the "from" line
		{"other@x.test", 0},
		{"postmaster@mail.partner.example", 14},
		{"postmaster@relay.example.net.", 15},
		{"a@b@mail.partner.example", 14}, // the last @ splits
		{"exa", 0},
		{"mail.partner.example", 0},
		{"", 0},
		{"user@", 0},
		{"@example.org", 19},
	}
	for _, tt := range tests {
		e, ok := l.MatchAddress(tt.addr)
		if ok != (tt.line != 0) || e.Line != tt.line {
			t.Errorf("MatchAddress(%q) = line %d, %v; want line %d", tt.addr, e.Line, ok, tt.line)
		}
	}

	l = mustParse(t, "*@*.example.org\nfoo?@example.com\n")
	for addr, want := range map[string]bool{
		"a@b.example.org": true, "a@example.org": false,
		"food@example.com": true, "foo@example.com": false, "foodie@example.com": false,
	} {
		if _, ok := l.MatchAddress(addr); ok != want {
			t.Errorf("MatchAddress(%q) = %v, want %v", addr, ok, want)
		}
	}
}

func TestFirstDuplicateWins(t *testing.T) {
	l := mustParse(t, strings.Join([]string{
		"192.0.2.1",          // 1
		"192.0.2.1",          // 2
		"::ffff:192.0.2.1",   // 3 the same address
		"10.0.0.0/16",        // 4
		"10.0.*.*",           // 5 the same network
		"10.0.77.1/16",       // 6 the same network
		"example.com",        // 7
		"EXAMPLE.com.",       // 8
		"a@example.net",      // 9
		"from A@Example.NET", // 10
		"2001:db8::/32",      // 11
		"2001:db8:0::1/32",   // 12
	}, "\n"))
	line := func(e Entry, ok bool) int {
		if !ok {
			return 0
		}
		return e.Line
	}
	for _, tt := range []struct {
		what      string
		got, want int
	}{
		{"192.0.2.1", line(l.MatchIP(netip.MustParseAddr("192.0.2.1"))), 1},
		{"::ffff:192.0.2.1", line(l.MatchIP(netip.MustParseAddr("::ffff:192.0.2.1"))), 1},
		{"10.0.5.5", line(l.MatchIP(netip.MustParseAddr("10.0.5.5"))), 4},
		{"example.com", line(l.MatchHost("example.com")), 7},
		{"a@example.net", line(l.MatchAddress("a@example.net")), 9},
		{"2001:db8::5", line(l.MatchIP(netip.MustParseAddr("2001:db8::5"))), 11},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: line %d, want %d", tt.what, tt.got, tt.want)
		}
	}
	if l.Len() != 12 {
		t.Errorf("Len() = %d, want 12 (duplicates are lines read)", l.Len())
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "*", true},
		{"*", "abc", true},
		{"a*", "a*b", true}, // a '*' in s is a plain byte
		{"a?c", "a*c", true},
		{"a*c", "abc", true},
		{"a*c", "ab", false},
		{"*.x", "a.b.x", true},
		{"*a*b", "xaxxb", true},
		{"*a*b", "xaxxbc", false},
		{"?", "", false},
		{"a**b", "ab", true},
	}
	for _, tt := range tests {
		if got := globMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}

var fuzzProbes = []netip.Addr{
	netip.MustParseAddr("0.0.0.0"),
	netip.MustParseAddr("1.2.3.4"),
	netip.MustParseAddr("10.0.0.150"),
	netip.MustParseAddr("192.168.1.239"),
	netip.MustParseAddr("255.255.255.255"),
	netip.MustParseAddr("::"),
	netip.MustParseAddr("::ffff:192.0.2.10"),
	netip.MustParseAddr("2001:db8::25"),
	netip.MustParseAddr("fe80::1%eth0"),
}

func FuzzParse(f *testing.F) {
	f.Add(sampleFile, "a.example.com")
	f.Add(matchFile, "j*@example.net")
	for _, line := range strings.Split(sampleFile, "\n") {
		f.Add(line, strings.TrimSpace(line))
	}
	f.Add("*\n?\n#\n#.\n*@*\n**.?.*", "*@*")
	f.Add("from\nfrom from\n\ufeff", "")
	f.Fuzz(func(t *testing.T, data, probe string) {
		l, problems, err := Parse("fuzz", strings.NewReader(data))
		if err != nil {
			if l != nil {
				t.Fatalf("error %v with a list", err)
			}
		} else if l == nil {
			t.Fatalf("no list")
		} else {
			// One entry per line with content, but for the lines refused
			// (a problem other than ignored trailing text).
			want := 0
			for i, line := range strings.Split(data, "\n") {
				if i == 0 {
					line = strings.TrimPrefix(line, "\ufeff")
				}
				if stripComment(line) != "" {
					want++
				}
			}
			for _, p := range problems {
				if !strings.HasPrefix(p.Reason, "ignored text after") {
					want--
				}
			}
			if l.Len() != want {
				t.Fatalf("Len %d, want %d (problems %v)", l.Len(), want, problems)
			}
		}
		lines := strings.Count(data, "\n") + 1
		checkEntry := func(e Entry, ok bool) {
			t.Helper()
			if ok && (e.File != "fuzz" || e.Line < 1 || e.Line > lines || e.Text == "") {
				t.Fatalf("bad entry %+v", e)
			}
		}
		for _, ip := range fuzzProbes {
			checkEntry(l.MatchIP(ip))
		}
		if ip, err := netip.ParseAddr(probe); err == nil {
			checkEntry(l.MatchIP(ip))
		}
		checkEntry(l.MatchHost(probe))
		checkEntry(l.MatchAddress(probe))
		checkEntry(l.MatchAddress("user@" + probe))
		checkEntry(l.MatchAddress(probe + "@example.com"))
		if err != nil {
			return
		}

		// Every line read without a problem matches itself.
		bad := map[int]bool{}
		for _, p := range problems {
			bad[p.Line] = true
		}
		for i, line := range strings.Split(data, "\n") {
			if bad[i+1] {
				continue
			}
			if i == 0 {
				line = strings.TrimPrefix(line, "\ufeff")
			}
			fields := strings.Fields(stripComment(strings.TrimSuffix(line, "\r")))
			if len(fields) == 2 && strings.EqualFold(fields[0], "from") {
				fields = fields[1:]
			}
			if len(fields) != 1 {
				continue
			}
			tok := fields[0]
			var ok bool
			if ip, err := netip.ParseAddr(tok); err == nil {
				_, ok = l.MatchIP(ip)
			} else if strings.Contains(tok, "@") {
				_, ok = l.MatchAddress(tok)
			} else if !strings.Contains(tok, "/") && !isIPGlob(strings.ToLower(tok)) {
				_, ok = l.MatchHost(tok)
			} else {
				continue
			}
			if !ok {
				t.Fatalf("line %d %q was accepted but does not match itself", i+1, tok)
			}
		}
	})
}

// benchList is a generated list of about 10,000 entries of every kind, in
// proportions a large site might have.
func benchList(b *testing.B) *List {
	var sb strings.Builder
	n := 0
	add := func(format string, args ...any) {
		fmt.Fprintf(&sb, format+"\n", args...)
		n++
	}
	sb.WriteString("# generated\n")
	for i := range 3000 {
		add("10.%d.%d.%d", i/65536, i/256%256, i%256)
	}
	for i := range 1000 {
		add("172.%d.%d.0/24  ; network %d", 16+i/256%16, i%256, i)
	}
	for i := range 500 {
		add("2001:db8:%x::/48", i)
		add("2001:db8:ffff::%x", i)
	}
	for i := range 100 { // wildcards are scanned one by one: keep them few
		add("100.%d.*.1??", 64+i)
	}
	for i := range 50 {
		add("198.%d.*.*", i)
	}
	for i := range 2500 {
		add("mx%d.host%d.example", i%7, i)
	}
	for i := range 1000 {
		add("*.sub%d.example.net", i)
	}
	for i := range 100 {
		add("mail?.d%d.example.org", i)
	}
	for i := range 1000 {
		add("user%d@sender%d.test", i, i%50)
	}
	for i := range 500 {
		add("*@dom%d.test", i)
	}
	for i := range 150 {
		add("j*@glob%d.test", i)
	}
	l, problems, err := Parse("bench.dat", strings.NewReader(sb.String()))
	if err != nil || len(problems) > 0 || l.Len() != n {
		b.Fatalf("Parse: %v, %v, %d of %d entries", err, problems, l.Len(), n)
	}
	return l
}

func BenchmarkMatch(b *testing.B) {
	l := benchList(b)
	b.Logf("%d entries", l.Len())
	ips := []struct {
		name string
		ip   netip.Addr
		ok   bool
	}{
		{"hit-v4-exact", netip.MustParseAddr("10.0.11.100"), true},
		{"hit-v4-cidr", netip.MustParseAddr("172.18.7.99"), true},
		{"hit-v4-glob", netip.MustParseAddr("100.163.9.150"), true},
		{"hit-v6", netip.MustParseAddr("2001:db8:1f3:1::1"), true},
		{"miss-v4", netip.MustParseAddr("203.0.113.9"), false},
		{"miss-v6", netip.MustParseAddr("2001:db9::1"), false},
	}
	for _, tt := range ips {
		b.Run("MatchIP/"+tt.name, func(b *testing.B) {
			for b.Loop() {
				if _, ok := l.MatchIP(tt.ip); ok != tt.ok {
					b.Fatal("wrong result")
				}
			}
		})
	}
	for _, tt := range []struct {
		name, host string
		ok         bool
	}{
		{"hit-exact", "MX3.host1200.example", true},
		{"hit-glob", "a.b.sub777.example.net", true},
		{"hit-glob?", "mail7.d42.example.org", true},
		{"miss", "smtp.out.provider.example.com", false},
	} {
		b.Run("MatchHost/"+tt.name, func(b *testing.B) {
			for b.Loop() {
				if _, ok := l.MatchHost(tt.host); ok != tt.ok {
					b.Fatal("wrong result")
				}
			}
		})
	}
	for _, tt := range []struct {
		name, addr string
		ok         bool
	}{
		{"hit-exact", "user77@sender27.test", true},
		{"hit-domain-glob", "anyone@dom321.test", true},
		{"hit-local-glob", "jane@glob99.test", true},
		{"hit-host", "bounce@x.sub5.example.net", true},
		{"miss", "someone@unlisted.example.com", false},
	} {
		b.Run("MatchAddress/"+tt.name, func(b *testing.B) {
			for b.Loop() {
				if _, ok := l.MatchAddress(tt.addr); ok != tt.ok {
					b.Fatal("wrong result")
				}
			}
		})
	}
}
