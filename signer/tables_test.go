package signer

import (
	"crypto"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Keys are expensive to make under -race: one RSA-2048 key for the whole
// package, Ed25519 keys on demand.
var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(crand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

func testEdKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pkcs8PEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// writeFile writes content to dir/name (making parent directories) with
// the given mode and returns the path.
func writeFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return path
}

// writeKey writes a fresh Ed25519 key as dir/name (mode 0600).
func writeKey(t testing.TB, dir, name string) (string, crypto.Signer) {
	t.Helper()
	k := testEdKey(t)
	return writeFile(t, dir, name, string(pkcs8PEM(t, k)), 0o600), k
}

func TestReadLines(t *testing.T) {
	in := "# a comment line\n" +
		"\n" +
		"   \t \n" +
		"key1 value one\n" +
		"  key2\t\t value two  with  inner   space \t\n" +
		"key3 value # trailing comment\n" +
		"key4#comment right after the key\n" +
		"#key5 commented out\n" +
		"lonely\n" +
		"key6 a:b:c#d\n"
	got, err := readLines("T", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []line{
		{"key1", "value one", "T:4"},
		{"key2", "value two  with  inner   space", "T:5"},
		{"key3", "value", "T:6"},
		{"key4", "", "T:7"},
		{"lonely", "", "T:9"},
		{"key6", "a:b:c", "T:10"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("readLines:\n got %q\nwant %q", got, want)
	}
}

func TestParseDataset(t *testing.T) {
	tests := []struct {
		spec        string
		allowRefile bool
		want        dataset
		err         string
	}{
		{"/etc/opendkim/KeyTable", false, dataset{"file", "/etc/opendkim/KeyTable"}, ""},
		{"/etc/with:colon", false, dataset{"file", "/etc/with:colon"}, ""},
		{"file:/etc/x", false, dataset{"file", "/etc/x"}, ""},
		{"FILE:/etc/x", false, dataset{"file", "/etc/x"}, ""},
		{"refile:/etc/x", true, dataset{"refile", "/etc/x"}, ""},
		{"refile:/etc/x", false, dataset{}, "only meaningful for the signing table"},
		{"csl:127.0.0.1,::1", false, dataset{"csl", "127.0.0.1,::1"}, ""},
		{"127.0.0.1,10.0.0.0/8", false, dataset{"csl", "127.0.0.1,10.0.0.0/8"}, ""},
		{"relative/KeyTable", false, dataset{"csl", "relative/KeyTable"}, ""},
		{"db:/etc/opendkim/KeyTable.db", false, dataset{}, `data set type "db" is not supported`},
		{"ldap://ldap.example.com/dc=example", false, dataset{}, `data set type "ldap" is not supported`},
		{"dsn:mysql://u:p@host/db", true, dataset{}, `data set type "dsn" is not supported`},
		{"lua:/etc/x.lua", true, dataset{}, `"lua" is not supported`},
	}
	for _, tc := range tests {
		got, err := parseDataset(tc.spec, tc.allowRefile)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseDataset(%q) = %v, %v; want error containing %q", tc.spec, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseDataset(%q) = %v, %v; want %v", tc.spec, got, err, tc.want)
		}
	}
}

func TestParseKeyTable(t *testing.T) {
	dir := t.TempDir()
	kt := writeFile(t, dir, "KeyTable", `# OpenDKIM KeyTable
mail   Example.COM:mail:/etc/keys/example.com/mail.private   # trailing comment

	indented  example.org:sel:/etc/keys/org.private
colons example.net:sel:MIIC:with:colons
mail   other.test:dup:/etc/keys/dup.private
Mail   upper.test:s:/etc/keys/upper.private
pct    %:s:/etc/keys/%/s.private
`, 0o644)
	for _, spec := range []string{kt, "file:" + kt} {
		rows, err := parseKeyTable(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		want := map[string]keyRow{
			"mail":     {"mail", "example.com", "mail", "/etc/keys/example.com/mail.private", kt + ":2"},
			"indented": {"indented", "example.org", "sel", "/etc/keys/org.private", kt + ":4"},
			"colons":   {"colons", "example.net", "sel", "MIIC:with:colons", kt + ":5"},
			"Mail":     {"Mail", "upper.test", "s", "/etc/keys/upper.private", kt + ":7"}, // names are case-sensitive
			"pct":      {"pct", "%", "s", "/etc/keys/%/s.private", kt + ":8"},
		}
		if len(rows) != len(want) {
			t.Fatalf("%d rows, want %d: %v", len(rows), len(want), rows)
		}
		for name, w := range want {
			if rows[name] != w {
				t.Errorf("row %q = %+v, want %+v", name, rows[name], w)
			}
		}
	}

	rows, err := parseKeyTable("csl:a=a.test:s1:/k/a, b=b.test:s2:/k/b")
	if err != nil {
		t.Fatal(err)
	}
	if rows["a"].domain != "a.test" || rows["b"].keydata != "/k/b" {
		t.Fatalf("csl key table: %+v", rows)
	}
}

func TestParseKeyTableErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, content, want string }{
		{"two fields", "ok a.test:s:/k\n\nbad example.com:sel\n", ":3: key table entry \"bad\": want NAME DOMAIN:SELECTOR:KEYFILE"},
		{"no value", "# c\nbad\n", ":2: key table entry \"bad\""},
		{"one field", "bad example.com\n", ":1: key table entry \"bad\""},
		{"empty selector", "x a.test:s:/k\nbad example.com::/k\n", ":2: key table entry \"bad\""},
		{"empty key", "bad example.com:sel:\n", ":1: key table entry \"bad\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_"), tc.content, 0o644)
			_, err := parseKeyTable(path)
			if err == nil || !strings.Contains(err.Error(), path+tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, path+tc.want)
			}
		})
	}
	if _, err := parseKeyTable("refile:" + filepath.Join(dir, "x")); err == nil || !strings.Contains(err.Error(), "refile") {
		t.Fatalf("refile: key table: %v", err)
	}
	if _, err := parseKeyTable("db:/etc/kt.db"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("db: key table: %v", err)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := parseKeyTable(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing key table: %v", err)
	}
}

func TestParseSigningTableErrors(t *testing.T) {
	dir := t.TempDir()
	keys := map[string]keyRow{"k": {name: "k", domain: "a.test", selector: "s", keydata: "/k"}}
	tests := []struct{ name, content, want string }{
		{"unknown key", "a.test k\n# x\n*@b.test nokey\n", ":3: signing table entry \"*@b.test\" names key \"nokey\", which is not in the key table"},
		{"unknown key with identity", "a.test K:@a.test\n", ":1: signing table entry \"a.test\" names key \"K\""},
		{"no value", "\n\n*@a.test\n", ":3: signing table entry \"*@a.test\" has no key name"},
		{"value only a comment", "a.test # k\n", ":1: signing table entry \"a.test\" has no key name"},
	}
	for _, tc := range tests {
		for _, prefix := range []string{"", "file:", "refile:"} {
			t.Run(tc.name+" "+prefix, func(t *testing.T) {
				path := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_"), tc.content, 0o644)
				_, err := parseSigningTable(prefix+path, keys)
				if err == nil || !strings.Contains(err.Error(), path+tc.want) {
					t.Fatalf("got %v, want an error containing %q", err, path+tc.want)
				}
			})
		}
	}
	for _, spec := range []string{"db:/x.db", "ldap://h/o=x", "dsn:pgsql://x"} {
		if _, err := parseSigningTable(spec, keys); err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%s: %v", spec, err)
		}
	}
}

// names lists the key names of rows.
func names(rows []signRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.keyName)
	}
	return out
}

func keyRows(names ...string) map[string]keyRow {
	m := map[string]keyRow{}
	for _, n := range names {
		m[n] = keyRow{name: n, domain: "x.test", selector: "s", keydata: "/k"}
	}
	return m
}

// TestPlainSigningTableOrder: without refile:, OpenDKIM tries
// user@sub.example.com, sub.example.com, user@.example.com, .example.com,
// user@.com, .com, user@*, * (dkimf_apply_signtable), whatever the file
// order.
func TestPlainSigningTableOrder(t *testing.T) {
	dir := t.TempDir()
	// Written in reverse, with decoys OpenDKIM never looks up.
	rows := []string{
		"*                     k8",
		"user@*                k7",
		".com                  k6",
		"user@.com             k5",
		".example.com          k4",
		"user@.example.com     k3",
		"sub.example.com       k2",
		"USER@Sub.Example.COM  k1",
		"example.com           bare",        // a parent without the dot is never tried
		"*@sub.example.com     starat",      // no wildcards in plain tables
		".sub.example.com      dotself",     // the domain itself with a dot is not tried
		"user@.sub.example.com userdotself", // neither is user@.domain itself
		"sub.example.com       dup",         // the first row of a key wins
	}
	keys := keyRows("k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "bare", "starat", "dotself", "userdotself", "dup")
	all := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"}
	for n := 0; n < 8; n++ {
		// Drop the n most specific rows: the next one must win.
		var content strings.Builder
		for _, r := range rows {
			name := strings.Fields(r)[1]
			if i := slices.Index(all, name); i >= 0 && i < n || name == "dup" && n >= 2 {
				continue
			}
			content.WriteString(r + "\n")
		}
		path := writeFile(t, dir, fmt.Sprintf("st%d", n), content.String(), 0o644)
		for _, spec := range []string{path, "file:" + path} {
			st, err := parseSigningTable(spec, keys)
			if err != nil {
				t.Fatal(err)
			}
			if st.refile {
				t.Fatal("plain table read as refile")
			}
			if got := names(st.lookup("user", "sub.example.com", false)); !slices.Equal(got, all[n:n+1]) {
				t.Errorf("without the %d most specific rows: first match %v, want %v", n, got, all[n:n+1])
			}
			if got := names(st.lookup("user", "sub.example.com", true)); !slices.Equal(got, all[n:]) {
				t.Errorf("without the %d most specific rows: all matches %v, want %v", n, got, all[n:])
			}
		}
	}

	path := writeFile(t, dir, "full", strings.Join(rows, "\n")+"\n", 0o644)
	st, err := parseSigningTable(path, keys)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		local, domain string
		want          []string
	}{
		{"other", "sub.example.com", []string{"k2", "k4", "k6", "k8"}},
		{"user", "example.com", []string{"bare", "k5", "k6", "k7", "k8"}},
		{"user", "a.b.sub.example.com", []string{"userdotself", "dotself", "k3", "k4", "k5", "k6", "k7", "k8"}},
		{"user", "example.org", []string{"k7", "k8"}},
		{"nobody", "com", []string{"k8"}},
		{"*", "sub.example.com", []string{"starat", "k2", "k4", "k6", "k8"}}, // only the literal string
	}
	for _, tc := range tests {
		if got := names(st.lookup(tc.local, tc.domain, true)); !slices.Equal(got, tc.want) {
			t.Errorf("%s@%s: %v, want %v", tc.local, tc.domain, got, tc.want)
		}
	}

	// csl: is a plain table too.
	st, err = parseSigningTable("csl:.example.com=k4, user@sub.example.com=k1", keys)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(st.lookup("user", "sub.example.com", true)); !slices.Equal(got, []string{"k1", "k4"}) {
		t.Errorf("csl: %v", got)
	}
}

// TestRefileSigningTable: refile: patterns are tried in file order against
// the whole address; "*" is the only wildcard; case does not matter.
func TestRefileSigningTable(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "SigningTable", `# refile
*@special.example.com   special
*@example.com           apex
*@*.example.com         sub
Boss@Corp.Test          boss
*@corp.test             corp
a.b@dots.test           dots
a?c@q.test              q
[ab]@br.test            br
x+y@plus.test           plus
*                       catchall
`, 0o644)
	keys := keyRows("special", "apex", "sub", "boss", "corp", "dots", "q", "br", "plus", "catchall")
	st, err := parseSigningTable("refile:"+path, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !st.refile {
		t.Fatal("not a refile table")
	}
	tests := []struct {
		addr string
		want []string // all matches in file order; the first is the single match
	}{
		{"user@example.com", []string{"apex", "catchall"}},
		{"user@sub.example.com", []string{"sub", "catchall"}},
		{"user@special.example.com", []string{"special", "sub", "catchall"}},
		{"user@deep.sub.example.com", []string{"sub", "catchall"}},
		{"user@notexample.com", []string{"catchall"}},
		{"user@example.com.evil.test", []string{"catchall"}}, // anchored
		{"boss@corp.test", []string{"boss", "corp", "catchall"}},
		{"BOSS@CORP.TEST", []string{"boss", "corp", "catchall"}},
		{"other@corp.test", []string{"corp", "catchall"}},
		{"a.b@dots.test", []string{"dots", "catchall"}},
		{"aXb@dots.test", []string{"catchall"}}, // "." is literal
		{"a?c@q.test", []string{"q", "catchall"}},
		{"abc@q.test", []string{"catchall"}}, // "?" is literal
		{"a@br.test", []string{"catchall"}},  // "[...]" is literal
		{"[ab]@br.test", []string{"br", "catchall"}},
		{"x+y@plus.test", []string{"plus", "catchall"}},
		{"xxy@plus.test", []string{"catchall"}},
	}
	for _, tc := range tests {
		local, domain, _ := strings.Cut(strings.ToLower(tc.addr), "@")
		if got := names(st.lookup(local, domain, true)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: all matches %v, want %v", tc.addr, got, tc.want)
		}
		if got := names(st.lookup(local, domain, false)); !slices.Equal(got, tc.want[:1]) {
			t.Errorf("%s: first match %v, want %v", tc.addr, got, tc.want[:1])
		}
	}
}

// TestWildcardMatchReference compares wildcardMatch with the anchored
// regular expression OpenDKIM builds (with every other character quoted).
func TestWildcardMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(alphabet string, n int) string {
		b := make([]byte, rng.IntN(n+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 20000 {
		p, s := gen("ab*.@", 7), gen("ab.@", 8)
		parts := strings.Split(p, "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		re := regexp.MustCompile("^(?s)" + strings.Join(parts, ".*") + "$")
		if got, want := wildcardMatch(p, s), re.MatchString(s); got != want {
			t.Fatalf("wildcardMatch(%q, %q) = %v, regexp says %v", p, s, got, want)
		}
	}
}

// signerWith builds a Signer over a key table and a signing table.
func signerWith(t testing.TB, kt, st string, multiple bool) *Signer {
	t.Helper()
	s, _, err := New(Config{KeyTable: kt, SigningTable: st, MultipleSignatures: multiple, RequireSafeKeys: true, Headers: []string{"From"}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type sig struct{ name, d, s, i string }

func sigs(reqs []Request) []sig {
	var out []sig
	for _, r := range reqs {
		out = append(out, sig{r.Key.Name, r.Domain, r.Key.Selector, r.Identity})
	}
	return out
}

// TestLookupPercentAndIdentity: "%" as key name, as KeyTable domain and in
// key paths; the identity after ":" with "%" replaced; i= outside d=
// dropped.
func TestLookupPercentAndIdentity(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir, "fixed.private")
	writeKey(t, dir, "net.private")
	writeKey(t, dir, "keys/multi.test/mail.private")
	kt := writeFile(t, dir, "KeyTable", fmt.Sprintf(`
fixed         Fixed.Test:sel1:%[1]s/fixed.private
anydomain     %%:anysel:%[1]s/fixed.private
lazy          %%:mail:%[1]s/keys/%%/mail.private
lazyfixed     multi.test:mail:%[1]s/keys/%%/mail.private
example.net   example.net:net:%[1]s/net.private
`, dir), 0o644)
	st := writeFile(t, dir, "SigningTable", `
*@example.net          %
*@pct.test             %
*@any.test             anydomain:bounce@%
*@sub.any.test         anydomain
*@*.lazy               lazy
*@multi.test           lazyfixed
*@id.test              fixed:@fixed.test
*@sub.fixed.test       fixed:news@%
*@out.test             fixed:someone@other.test
*@suffix.test          fixed:x@notfixed.test
*@multi.test           fixed
`, 0o644)
	s := signerWith(t, kt, "refile:"+st, false)

	tests := []struct {
		local, domain string
		want          []sig
		err           string
	}{
		{"u", "example.net", []sig{{"example.net", "example.net", "net", ""}}, ""},
		{"u", "EXAMPLE.NET.", []sig{{"example.net", "example.net", "net", ""}}, ""},
		{"u", "pct.test", nil, `key "pct.test" is not in the key table`},
		{"u", "any.test", []sig{{"anydomain", "any.test", "anysel", "bounce@any.test"}}, ""},
		{"u", "sub.any.test", []sig{{"anydomain", "sub.any.test", "anysel", ""}}, ""},
		{"u", "a.test.lazy", nil, "keys/a.test.lazy/mail.private"},
		{"u", "id.test", []sig{{"fixed", "fixed.test", "sel1", "@fixed.test"}}, ""}, // i= equal to d= stays
		{"u", "sub.fixed.test", []sig{{"fixed", "fixed.test", "sel1", "news@sub.fixed.test"}}, ""},
		{"u", "out.test", []sig{{"fixed", "fixed.test", "sel1", ""}}, ""},    // i= outside d= is dropped
		{"u", "suffix.test", []sig{{"fixed", "fixed.test", "sel1", ""}}, ""}, // notfixed.test is not below fixed.test
		{"u", "multi.test", []sig{{"lazyfixed", "multi.test", "mail", ""}}, ""},
		{"u", "nowhere.test", nil, ""},
	}
	for _, tc := range tests {
		got, err := s.Lookup(tc.local, tc.domain)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s@%s: %v, %v; want error containing %q", tc.local, tc.domain, sigs(got), err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(sigs(got), tc.want) {
			t.Errorf("%s@%s: %v, %v; want %v", tc.local, tc.domain, sigs(got), err, tc.want)
		}
	}

	// A key whose path depends on the From domain is read when first
	// needed, cached, and a missing one is an error (the milter tempfails)
	// until it appears.
	reqs, err := s.Lookup("u", "a.test.lazy")
	if err == nil {
		t.Fatalf("missing key: %v", sigs(reqs))
	}
	writeKey(t, dir, "keys/a.test.lazy/mail.private")
	r1, err := s.Lookup("u", "a.test.lazy")
	if err != nil || !slices.Equal(sigs(r1), []sig{{"lazy", "a.test.lazy", "mail", ""}}) {
		t.Fatalf("after the key appeared: %v, %v", sigs(r1), err)
	}
	r2, err := s.Lookup("x", "a.test.lazy")
	if err != nil || r1[0].Key != r2[0].Key {
		t.Fatal("lazily loaded key not cached")
	}
	if r3, err := s.Lookup("x", "b.test.lazy"); err == nil {
		t.Fatalf("b.test.lazy has no key file but got %v", sigs(r3))
	}

	// A broken key file under a % path is an error at lookup too.
	writeFile(t, dir, "keys/broken.lazy/mail.private", "not a key\n", 0o600)
	if _, err := s.Lookup("u", "broken.lazy"); err == nil || !strings.Contains(err.Error(), "KeyTable:4") {
		t.Fatalf("broken key: %v", err)
	}
	// An unsafe one as well.
	writeKey(t, dir, "keys/unsafe.lazy/mail.private")
	os.Chmod(filepath.Join(dir, "keys/unsafe.lazy/mail.private"), 0o644)
	if _, err := s.Lookup("u", "unsafe.lazy"); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("unsafe key: %v", err)
	}

	// With MultipleSignatures every matching row signs, in file order.
	m := signerWith(t, kt, "refile:"+st, true)
	got, err := m.Lookup("u", "multi.test")
	want := []sig{{"lazyfixed", "multi.test", "mail", ""}, {"fixed", "fixed.test", "sel1", ""}}
	if err != nil || !slices.Equal(sigs(got), want) {
		t.Fatalf("multiple: %v, %v; want %v", sigs(got), err, want)
	}
}

// TestLookupPlainThroughSigner: the plain-table order through Signer,
// with MultipleSignatures and case-insensitive keys.
func TestLookupPlainThroughSigner(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir, "a.private")
	writeKey(t, dir, "b.private")
	kt := writeFile(t, dir, "KeyTable", fmt.Sprintf("a example.com:a:%[1]s/a.private\nb example.com:b:%[1]s/b.private\n", dir), 0o644)
	st := writeFile(t, dir, "SigningTable", "*  b\nBoss@Sub.Example.com a\n", 0o644)
	single := signerWith(t, kt, st, false)
	multi := signerWith(t, kt, "file:"+st, true)
	for _, tc := range []struct {
		local, domain string
		single, multi []string
	}{
		{"boss", "sub.example.com", []string{"a"}, []string{"a", "b"}},
		{"BOSS", "SUB.EXAMPLE.COM", []string{"a"}, []string{"a", "b"}},
		{"other", "sub.example.com", []string{"b"}, []string{"b"}},
	} {
		for _, c := range []struct {
			s    *Signer
			want []string
		}{{single, tc.single}, {multi, tc.multi}} {
			reqs, err := c.s.Lookup(tc.local, tc.domain)
			var got []string
			for _, r := range reqs {
				got = append(got, r.Key.Selector)
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("%s@%s: %v, %v; want %v", tc.local, tc.domain, got, err, c.want)
			}
		}
	}
}

// TestNewErrors: bad tables and keys stop New with the file and line.
func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir, "ok.private")
	writeFile(t, dir, "open.private", string(pkcs8PEM(t, testEdKey(t))), 0o644)
	kt := writeFile(t, dir, "KeyTable", fmt.Sprintf("ok example.com:s:%s/ok.private\n", dir), 0o644)
	ktOpen := writeFile(t, dir, "KeyTableOpen", fmt.Sprintf("# x\nopen example.com:s:%s/open.private\n", dir), 0o644)
	ktMissing := writeFile(t, dir, "KeyTableMissing", fmt.Sprintf("gone example.com:s:%s/gone.private\n", dir), 0o644)
	stBad := writeFile(t, dir, "SigningTableBad", "*@example.com ok\n*@other.test nope\n", 0o644)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown key", Config{KeyTable: kt, SigningTable: "refile:" + stBad}, stBad + `:2: signing table entry "*@other.test" names key "nope"`},
		{"unsafe key", Config{KeyTable: ktOpen, SigningTable: "csl:*=open", RequireSafeKeys: true}, ktOpen + `:2: key table entry "open": key ` + dir + "/open.private: mode 0644"},
		{"missing key", Config{KeyTable: ktMissing, SigningTable: "csl:*=gone"}, ktMissing + `:1: key table entry "gone": key ` + dir + "/gone.private"},
		{"signing table without key table", Config{SigningTable: "csl:*=ok"}, "needs signing.key_table"},
		{"ldap without attributes", Config{KeyTable: "ldap://x/y"}, `key table: LDAP URL "ldap://x/y" names 0 attribute(s)`},
		{"ldap unreachable", Config{KeyTable: "ldap://127.0.0.1:1/?DKIMDomain,DKIMSelector,DKIMKey?sub?(DKIMSelector=$d)", SigningTable: "csl:*=x", LDAPTimeout: time.Second}, "LDAP: ldap://127.0.0.1:1: "},
		{"ldap password without bind DN", Config{KeyTable: "ldap://127.0.0.1:1/?a,b,c", LDAPBindPassword: "secret"}, "no ldap_bind_dn"},
		{"ldap bind DN without password", Config{KeyTable: "ldap://127.0.0.1:1/?a,b,c", LDAPBindDN: "cn=x"}, `signing.ldap_bind_dn "cn=x" has no password`},
		{"ldap signing table without key table", Config{SigningTable: "ldap://127.0.0.1:1/?a?sub?(x=$d)"}, "needs signing.key_table"},
		{"hosts file", Config{InternalHostsFile: dir + "/missing-hosts"}, "internal hosts: "},
	}
	for _, tc := range tests {
		tc.cfg.Headers = []string{"From"}
		if _, _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// The unsafe key is fine without RequireSafeKeys.
	if _, _, err := New(Config{KeyTable: ktOpen, SigningTable: "csl:*=open", Headers: []string{"From"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := New(Config{Headers: []string{"Subject"}}); err == nil {
		t.Fatal("From not signed but no error")
	}
}

// FuzzTables parses a KeyTable and a SigningTable (flat files, the
// signing table also as refile:) and checks: every parsed row has a
// non-empty name, domain, selector and key; looking a name up returns its
// row; every signing row names "%" or a parsed key; a lookup returns only
// parsed rows, the first of them alone without MultipleSignatures.
func FuzzTables(f *testing.F) {
	f.Add("k1 example.com:s1:/keys/k1.private\nk2 %:s2:/keys/%/k2.private # comment\n", "*@example.com k1\n*@*.example.com k2:news@%\n", "alice", "example.com")
	f.Add("boss corp.test:boss:/k\ncorp corp.test:corp:/k\n", ".corp.test corp\nboss@corp.test boss\ncorp.test corp\n", "boss", "corp.test")
	f.Add("bad\nk a:b:c\n", "* k\n", "x", "y")
	f.Add("k a:b:c:d:e\nk dup:dup:dup\n", "\n#\n*@* k\n", "", "")
	f.Fuzz(func(t *testing.T, keyTable, signTable, local, domain string) {
		dir := t.TempDir()
		kt := filepath.Join(dir, "KeyTable")
		st := filepath.Join(dir, "SigningTable")
		if os.WriteFile(kt, []byte(keyTable), 0o600) != nil || os.WriteFile(st, []byte(signTable), 0o600) != nil {
			t.Fatal("write")
		}
		rows, err := parseKeyTable(kt)
		if err != nil {
			return
		}
		for name, r := range rows {
			if name == "" || r.name != name || r.domain == "" || r.selector == "" || r.keydata == "" {
				t.Fatalf("row %q: %+v", name, r)
			}
			if got, ok := rows[r.name]; !ok || got != r {
				t.Fatalf("lookup of %q", r.name)
			}
		}
		for _, spec := range []string{st, "refile:" + st} {
			table, err := parseSigningTable(spec, rows)
			if err != nil {
				continue
			}
			for _, r := range table.rows {
				if _, ok := rows[r.keyName]; !ok && r.keyName != "%" {
					t.Fatalf("%s: row %+v names a missing key", spec, r)
				}
			}
			l, d := strings.ToLower(local), strings.ToLower(domain)
			all := table.lookup(l, d, true)
			first := table.lookup(l, d, false)
			if len(first) > 1 || len(all) > 0 && (len(first) != 1 || first[0] != all[0]) || len(all) == 0 && len(first) != 0 {
				t.Fatalf("%s: lookup(%q, %q): single %v, multiple %v", spec, l, d, first, all)
			}
			for _, r := range all {
				if !slices.Contains(table.rows, r) {
					t.Fatalf("%s: lookup returned %+v, not a parsed row", spec, r)
				}
			}
		}
	})
}
