package opendkimconf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vouch/internal/config"
	"vouch/signer"
)

// convert writes conf (with DIR replaced by a temporary directory, which
// also holds files) and converts it. The result must load with
// config.Load, and every setting that counts must be accounted for: taken
// over (its file:line in a comment) or listed.
func convert(t *testing.T, conf string, files map[string]string) (*Result, *config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(content, "DIR", dir)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "opendkim.conf")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(conf, "DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(f, Options{LDAPPasswordFile: "/etc/vouch/test.secret"})
	if res.LDAPBindPassword != "" && strings.Contains(string(res.TOML), res.LDAPBindPassword) {
		t.Fatalf("the LDAP bind password is in the TOML:\n%s", res.TOML)
	}
	out := filepath.Join(dir, "vouch.toml")
	if err := os.WriteFile(out, res.TOML, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(out)
	if err != nil {
		t.Fatalf("config.Load: %v\n%s", err, res.TOML)
	}
	for _, s := range f.Settings {
		if last, _ := f.Get(s.Name); last.Line == s.Line && last.File == s.File && !strings.Contains(string(res.TOML), s.Where()) {
			t.Errorf("%s (%s) is neither carried over nor listed:\n%s", s.Name, s.Where(), res.TOML)
		}
	}
	for _, p := range f.Problems {
		if !strings.Contains(string(res.TOML), p.Where()) {
			t.Errorf("problem %s (%s) not listed", p.Name, p.Where())
		}
	}
	return res, cfg, dir
}

func names(items []Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Option)
	}
	return out
}

func hasItem(items []Item, option, reason string) bool {
	for _, it := range items {
		if it.Option == option && strings.Contains(it.Reason, reason) {
			return true
		}
	}
	return false
}

func TestDebianDefault(t *testing.T) {
	conf, err := os.ReadFile("testdata/debian-bookworm.conf")
	if err != nil {
		t.Fatal(err)
	}
	res, cfg, _ := convert(t, string(conf), nil)
	if cfg.Listen != "local:/run/opendkim/opendkim.sock" || cfg.SocketMode != "0770" {
		t.Errorf("listen = %q, socket_mode = %q", cfg.Listen, cfg.SocketMode)
	}
	if !slices.Equal(cfg.Signing.Oversign, []string{"From"}) {
		t.Errorf("oversign = %q", cfg.Signing.Oversign)
	}
	if !slices.Equal(cfg.Signing.InternalHosts, []string{"127.0.0.1", "::1"}) {
		t.Errorf("internal_hosts = %q (OpenDKIM's default is vouch's)", cfg.Signing.InternalHosts)
	}
	if cfg.Screen.Enabled {
		t.Error("screening on: OpenDKIM does not screen")
	}
	if !cfg.Verify.Enabled {
		t.Error("verification off, but Debian's OpenDKIM verifies (Mode sv)")
	}
	want := []string{"Syslog", "SyslogSuccess", "Canonicalization", "UserID", "PidFile", "TrustAnchorFile"}
	if got := names(res.NotCarried); !slices.Equal(got, want) {
		t.Errorf("not carried: %q, want %q", got, want)
	}
	if !hasItem(res.Notes, "KeyTable, KeyFile", "no signing keys") {
		t.Errorf("no note that nothing is signed: %v", res.Notes)
	}
}

func TestConvert(t *testing.T) {
	keyFile := "DIR/mail.private"
	cases := []struct {
		name       string
		conf       string
		files      map[string]string
		check      func(t *testing.T, cfg *config.Config)
		notCarried []string // options that must be listed as not carried over
		notes      []string // options that must have a note
		contains   []string // strings the TOML must contain
	}{
		{
			name: "Domain list, Selector, KeyFile: a key per domain",
			conf: "Domain example.com, Example.NET\nSelector mail\nKeyFile " + keyFile + "\nMode s\nCanonicalization relaxed/relaxed\n",
			check: func(t *testing.T, cfg *config.Config) {
				if cfg.Verify.Enabled {
					t.Error("Mode s, but vouch verifies")
				}
				want := []config.Key{{Domain: "example.com", Selector: "mail", PrivateKey: cfg.Signing.Keys[0].PrivateKey}, {Domain: "example.net", Selector: "mail", PrivateKey: cfg.Signing.Keys[0].PrivateKey}}
				if !slices.Equal(cfg.Signing.Keys, want) || !strings.HasSuffix(cfg.Signing.Keys[0].PrivateKey, "/mail.private") {
					t.Errorf("keys = %+v", cfg.Signing.Keys)
				}
			},
		},
		{
			name:  "Domain from a file",
			conf:  "Domain file:DIR/domains\nSelector s1\nKeyFile " + keyFile + "\n",
			files: map[string]string{"domains": "# signed domains\none.test\ntwo.test # trailing comment\n\n"},
			check: func(t *testing.T, cfg *config.Config) {
				if len(cfg.Signing.Keys) != 2 || cfg.Signing.Keys[1].Domain != "two.test" {
					t.Errorf("keys = %+v", cfg.Signing.Keys)
				}
			},
		},
		{
			name:       "Domain file that cannot be read",
			conf:       "Domain /nonexistent/domains\nSelector s1\nKeyFile " + keyFile + "\n",
			notCarried: []string{"Domain", "Selector", "KeyFile"},
			notes:      []string{"KeyTable, KeyFile"},
		},
		{
			name:       "Selector without KeyFile",
			conf:       "Domain example.com\nSelector s1\n",
			notCarried: []string{"Domain", "Selector"},
		},
		{
			name:     "Domain * becomes a csl: key table with domain %",
			conf:     "Domain *\nSelector any\nKeyFile " + keyFile + "\n",
			notes:    []string{"Domain"},
			contains: []string{`key_table = "csl:any=%:any:`, `signing_table = "csl:*=any"`},
		},
		{
			name:     "SubDomains becomes a csl: signing table with .domain rows",
			conf:     "Domain example.com\nSelector sub\nKeyFile " + keyFile + "\nSubDomains yes\n",
			notes:    []string{"Domain"},
			contains: []string{`signing_table = "csl:example.com=example.com,.example.com=example.com:@example.com"`},
		},
		{
			name: "KeyTable, refile: SigningTable, InternalHosts file (Domain ignored)",
			conf: "KeyTable file:DIR/KeyTable\nSigningTable refile:DIR/SigningTable\nInternalHosts DIR/TrustedHosts\n" +
				"Domain example.com\nSelector x\nKeyFile /x\nMultipleSignatures yes\nRequireSafeKeys false\n",
			check: func(t *testing.T, cfg *config.Config) {
				s := cfg.Signing
				if !strings.HasPrefix(s.KeyTable, "file:") || !strings.HasPrefix(s.SigningTable, "refile:") ||
					len(s.InternalHosts) != 0 || !strings.HasSuffix(s.InternalHostsFile, "/TrustedHosts") ||
					!s.MultipleSignatures || s.RequireSafeKeys || len(s.Keys) != 0 {
					t.Errorf("signing = %+v", s)
				}
			},
			notCarried: []string{"Domain", "Selector", "KeyFile"},
		},
		{
			name: "InternalHosts as a list, with and without csl:",
			conf: "InternalHosts 192.168.0.0/16, 10.0.0.0/8 ,!10.0.0.5\n",
			check: func(t *testing.T, cfg *config.Config) {
				if !slices.Equal(cfg.Signing.InternalHosts, []string{"192.168.0.0/16", "10.0.0.0/8", "!10.0.0.5"}) {
					t.Errorf("internal_hosts = %q", cfg.Signing.InternalHosts)
				}
			},
		},
		{
			name: "InternalHosts csl: with IPv6",
			conf: "InternalHosts csl:::1,127.0.0.1,.corp.example\n",
			check: func(t *testing.T, cfg *config.Config) {
				if !slices.Equal(cfg.Signing.InternalHosts, []string{"::1", "127.0.0.1", ".corp.example"}) {
					t.Errorf("internal_hosts = %q", cfg.Signing.InternalHosts)
				}
			},
		},
		{
			name: "SignHeaders * with +x and -x, relative to libopendkim's default",
			conf: "SignHeaders *,+Message-ID,-cc,-Resent-Sender,X-Ignored\n",
			check: func(t *testing.T, cfg *config.Config) {
				want := []string{"From", "Reply-To", "Subject", "Date", "To", "Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
					"In-Reply-To", "References", "List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post",
					"List-Owner", "List-Archive", "Message-ID"}
				if !slices.Equal(cfg.Signing.Headers, want) {
					t.Errorf("headers = %q", cfg.Signing.Headers)
				}
			},
			notes: []string{"SignHeaders"}, // X-Ignored
		},
		{
			name: "SignHeaders without From: From added",
			conf: "SignHeaders To, Subject, +X-Nothing\n",
			check: func(t *testing.T, cfg *config.Config) {
				if !slices.Equal(cfg.Signing.Headers, []string{"From", "To", "Subject"}) {
					t.Errorf("headers = %q", cfg.Signing.Headers)
				}
				if len(cfg.Signing.Oversign) != 0 {
					t.Errorf("oversign = %q: it would sign more than SignHeaders", cfg.Signing.Oversign)
				}
			},
			notes: []string{"SignHeaders", "OverSignHeaders"},
		},
		{
			name:       "regular expressions in SignHeaders are dropped",
			conf:       "SignHeaders from,x-.*\n",
			notCarried: []string{"SignHeaders"},
		},
		{
			name:  "OverSignHeaders from a file, one not signed",
			conf:  "OverSignHeaders DIR/oversign\n",
			files: map[string]string{"oversign": "From\nsubject\nX-Mailer\n"},
			check: func(t *testing.T, cfg *config.Config) {
				if !slices.Equal(cfg.Signing.Oversign, []string{"From", "Subject", "X-Mailer"}) {
					t.Errorf("oversign = %q", cfg.Signing.Oversign)
				}
			},
			notes: []string{"OverSignHeaders"},
		},
		{
			name: "keys in LDAP (Zimbra): tables and bind options carried over",
			conf: "KeyTable ldap://ldap1.example:389/?DKIMDomain,DKIMSelector,DKIMKey,?sub?(DKIMSelector=$d) ldap://ldap2.example:389/?DKIMDomain,DKIMSelector,DKIMKey,?sub?(DKIMSelector=$d)\n" +
				"SigningTable ldap://ldap1.example:389/?DKIMSelector?sub?(DKIMIdentity=$d) ldap://ldap2.example:389/?DKIMSelector?sub?(DKIMIdentity=$d)\n" +
				"LDAPBindUser uid=zmpostfix,cn=appaccts,cn=zimbra\nLDAPBindPassword s3cr3t-pw\nLDAPUseTLS 1\nLDAPTimeout 30\n" +
				"LDAPKeepaliveIdle 240\nLDAPKeepaliveProbes 10\nLDAPKeepaliveInterval 30\nLDAPAuthMechanism DIGEST-MD5\n",
			check: func(t *testing.T, cfg *config.Config) {
				sg := cfg.Signing
				if !strings.HasPrefix(sg.KeyTable, "ldap://ldap1.example:389/?DKIMDomain") || !strings.Contains(sg.SigningTable, " ldap://ldap2.example:389/?DKIMSelector") {
					t.Errorf("tables: %q, %q", sg.KeyTable, sg.SigningTable)
				}
				if sg.LDAPBindDN != "uid=zmpostfix,cn=appaccts,cn=zimbra" || sg.LDAPBindPassword != "" || sg.LDAPBindPasswordFile != "/etc/vouch/test.secret" || !sg.LDAPUseTLS || sg.LDAPTimeout != 30*time.Second {
					t.Errorf("LDAP options: %+v", sg)
				}
			},
			notCarried: []string{"LDAPAuthMechanism", "LDAPKeepaliveIdle", "LDAPKeepaliveProbes", "LDAPKeepaliveInterval"},
			notes:      []string{"LDAPBindPassword", "LDAPUseTLS", "LDAPTimeout"},
		},
		{
			name:       "LDAP options without an LDAP table",
			conf:       "Domain example.com\nSelector s\nKeyFile " + keyFile + "\nLDAPBindUser cn=x\nLDAPUseTLS no\n",
			notCarried: []string{"LDAPBindUser", "LDAPUseTLS"},
		},
		{
			name: "Mode v: the keys are written commented out",
			conf: "Mode v\nDomain example.com\nSelector s\nKeyFile " + keyFile + "\nInternalHosts 10.0.0.0/8\n",
			check: func(t *testing.T, cfg *config.Config) {
				if len(cfg.Signing.Keys) != 0 || !slices.Equal(cfg.Signing.InternalHosts, []string{"127.0.0.1", "::1"}) {
					t.Errorf("signing not commented out: %+v", cfg.Signing)
				}
			},
			notCarried: []string{"Mode"},
			contains:   []string{"# [[signing.key]]", `# domain = "example.com"`},
		},
		{
			name:       "lines OpenDKIM refuses",
			conf:       "NoSuchOption 1\nSyslog\nMultipleSignatures maybe\nSignatureTTL 1h\n",
			notCarried: []string{"NoSuchOption", "Syslog", "MultipleSignatures", "SignatureTTL"},
		},
		{
			name:  "Include, and the last of repeated options counts",
			conf:  "Socket inet:1111@localhost\nInclude DIR/more.conf\nMultipleSignatures no\n",
			files: map[string]string{"more.conf": "Socket inet:2222@127.0.0.1  # included\nMultipleSignatures yes\n"},
			check: func(t *testing.T, cfg *config.Config) {
				if cfg.Listen != "inet:2222@127.0.0.1" || cfg.Signing.MultipleSignatures {
					t.Errorf("listen %q, multiple_signatures %v", cfg.Listen, cfg.Signing.MultipleSignatures)
				}
			},
			notes: []string{"Socket", "MultipleSignatures"},
		},
		{
			name: "numbers, names and resolvers",
			conf: "SignatureTTL 0x15180\nAuthservID mx.example.com\nNameservers 192.0.2.53, 2001:db8::53\nsocket inet6:8891@[::1]\nUMask 002\n",
			check: func(t *testing.T, cfg *config.Config) {
				if cfg.Signing.SignatureTTL != 24*time.Hour || cfg.AuthservID != "mx.example.com" ||
					!slices.Equal(cfg.DNS.Servers, []string{"192.0.2.53:53", "[2001:db8::53]:53"}) || cfg.Listen != "inet6:8891@[::1]" {
					t.Errorf("config = %+v", cfg)
				}
			},
			notCarried: []string{"UMask"},
		},
		{
			name:       "canonicalization and algorithm",
			conf:       "Canonicalization relaxed\nSignatureAlgorithm rsa-sha1\n",
			notCarried: []string{"Canonicalization", "SignatureAlgorithm"},
			contains:   []string{"(OpenDKIM: relaxed/simple)"},
		},
		{
			name:       "a socket vouch cannot use",
			conf:       "Socket inet:notaport@localhost\n",
			notCarried: []string{"Socket"},
			check: func(t *testing.T, cfg *config.Config) {
				if cfg.Listen != config.Default().Listen {
					t.Errorf("listen = %q", cfg.Listen)
				}
			},
		},
		{
			name:       "data sets vouch cannot read",
			conf:       "InternalHosts refile:DIR/hosts\nKeyTable DIR/keys.db\nSigningTable DIR/SigningTable\n",
			notCarried: []string{"InternalHosts", "KeyTable", "SigningTable"},
		},
		{
			name: "refile: KeyTable and InternalHosts without patterns are read as files",
			conf: "KeyTable refile:DIR/KeyTable\nSigningTable refile:DIR/SigningTable\nInternalHosts refile:DIR/TrustedHosts\n",
			files: map[string]string{
				"KeyTable":     "mail._domainkey.example.com example.com:mail:/etc/opendkim/keys/example.com/mail.private\n",
				"TrustedHosts": "127.0.0.1\nlocalhost\n192.168.1.0/24\n",
			},
			check: func(t *testing.T, cfg *config.Config) {
				s := cfg.Signing
				if !strings.HasPrefix(s.KeyTable, "file:") || !strings.HasPrefix(s.SigningTable, "refile:") || !strings.HasPrefix(s.InternalHostsFile, "file:") {
					t.Errorf("signing = %+v", s)
				}
			},
			notes: []string{"KeyTable", "InternalHosts"},
		},
		{
			name:       "refile: InternalHosts with patterns",
			conf:       "InternalHosts refile:DIR/TrustedHosts\n",
			files:      map[string]string{"TrustedHosts": "127.0.0.1\n*.example.com\n"},
			notCarried: []string{"InternalHosts"},
			check: func(t *testing.T, cfg *config.Config) {
				if cfg.Signing.InternalHostsFile != "" {
					t.Errorf("internal_hosts_file = %q", cfg.Signing.InternalHostsFile)
				}
			},
		},
		{
			name:     "strings are quoted for TOML",
			conf:     "AuthservID a\"b\\c\n",
			contains: []string{`authserv_id = "a\"b\\c"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, cfg, _ := convert(t, tc.conf, tc.files)
			if tc.check != nil {
				tc.check(t, cfg)
			}
			for _, o := range tc.notCarried {
				if !slices.Contains(names(res.NotCarried), o) {
					t.Errorf("%s not listed as not carried over: %v", o, res.NotCarried)
				}
			}
			for _, o := range tc.notes {
				if !slices.Contains(names(res.Notes), o) {
					t.Errorf("no note on %s: %v", o, res.Notes)
				}
			}
			for _, s := range tc.contains {
				if !strings.Contains(string(res.TOML), s) {
					t.Errorf("output lacks %q:\n%s", s, res.TOML)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", res.TOML)
			}
		})
	}
}

// TestTableKeysSign loads what Domain "*" and SubDomains turn into with
// the signer and checks d= and i= as OpenDKIM sets them.
func TestTableKeysSign(t *testing.T) {
	for _, tc := range []struct {
		name, conf, local, domain string
		wantD, wantI              string // wantD "" means unsigned
	}{
		{"any domain", "Domain *", "a", "whatever.test", "whatever.test", ""},
		{"listed domain", "Domain example.com,example.net\nSubDomains yes", "a", "example.net", "example.net", ""},
		{"subdomain signs as the parent", "Domain example.com,example.net\nSubDomains yes", "a", "mail.sales.example.com", "example.com", "@example.com"},
		{"nearest listed parent", "Domain example.com,sales.example.com\nSubDomains yes", "a", "x.sales.example.com", "sales.example.com", "@sales.example.com"},
		{"parent of a listed domain is not signed", "Domain sales.example.com\nSubDomains yes", "a", "example.com", "", ""},
		{"other domain", "Domain example.com\nSubDomains yes", "a", "example.org", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, pem, err := signer.GenerateKey("ed25519", 0)
			if err != nil || key == nil {
				t.Fatal(err)
			}
			_, cfg, _ := convert(t, tc.conf+"\nSelector sel\nKeyFile DIR/k.private\n", map[string]string{"k.private": string(pem)})
			s, _, err := signer.New(signer.Config{
				InternalHosts: cfg.Signing.InternalHosts, KeyTable: cfg.Signing.KeyTable, SigningTable: cfg.Signing.SigningTable,
				RequireSafeKeys: true, Headers: []string{"From"},
			})
			if err != nil {
				t.Fatal(err)
			}
			reqs, err := s.Lookup(tc.local, tc.domain)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantD == "" {
				if len(reqs) != 0 {
					t.Fatalf("signed: %+v", reqs[0])
				}
				return
			}
			if len(reqs) != 1 || reqs[0].Domain != tc.wantD || reqs[0].Identity != tc.wantI || reqs[0].Key.Selector != "sel" {
				t.Fatalf("got %+v, want d=%s i=%s", reqs, tc.wantD, tc.wantI)
			}
		})
	}
}

// TestEveryOptionHasAPlace: each of OpenDKIM's options is either converted
// or has a reason for not being carried over, never both.
func TestEveryOptionHasAPlace(t *testing.T) {
	converted := []string{"AuthservID", "Canonicalization", "Domain", "Include", "InternalHosts", "KeyFile", "KeyTable",
		"Mode", "MultipleSignatures", "Nameservers", "On-BadSignature", "On-DNSError", "On-InternalError", "On-KeyNotFound",
		"On-NoSignature", "On-Security", "On-SignatureError", "OverSignHeaders", "RequireSafeKeys", "Selector",
		"SignatureAlgorithm", "SignatureTTL", "SignHeaders", "SigningTable", "Socket", "SubDomains", "UMask"}
	for _, o := range options {
		_, dropped := notCarried[o.name]
		if dropped == slices.Contains(converted, o.name) {
			t.Errorf("%s: converted %v, in the not-carried table %v", o.name, !dropped, dropped)
		}
	}
	for name := range notCarried {
		if _, ok := canonical[strings.ToLower(name)]; !ok || canonical[strings.ToLower(name)] != name {
			t.Errorf("not-carried entry %q is not an OpenDKIM option", name)
		}
	}
}

func TestParseValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{{"10", 10, true}, {"0x10", 16, true}, {"010", 8, true}, {"-5", -5, true}, {"0", 0, true}, {"1h", 0, false}, {"1_000", 0, false}, {"09", 0, false}} {
		if got, ok := parseInt(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("parseInt(%q) = %d, %v", tc.in, got, ok)
		}
	}
	for in, want := range map[string]bool{"yes": true, "True": true, "1": true, "no": false, "FALSE": false, "0": false, "nope": false} {
		if got, ok := parseBool(in); !ok || got != want {
			t.Errorf("parseBool(%q) = %v, %v", in, got, ok)
		}
	}
	if _, ok := parseBool("maybe"); ok {
		t.Error("maybe is a boolean?")
	}
	for spec, kind := range map[string]string{
		"/etc/x": "file", "file:/etc/x": "file", "refile:/etc/x": "refile", "csl:a,b": "csl", "a, b": "csl",
		"::1,127.0.0.1": "?", "127.0.0.1,::1": "csl", "/etc/x.db": "db", "ldap://h/dn": "ldap", "LDAPS://h/dn": "ldap",
		"dsn:mysql://u@h/db": "dsn", "relative": "csl",
	} {
		if got := parseDataset(spec).kind; got != kind {
			t.Errorf("parseDataset(%q) = %s, want %s", spec, got, kind)
		}
	}
}

func TestParseLines(t *testing.T) {
	f, err := Parse("x.conf", strings.NewReader("  Syslog\tyes # comment\r\nsocket   inet:1@localhost   \n\n# only a comment\nKeyFile /a#b\nMode"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range f.Settings {
		got = append(got, s.Name+"="+s.Value)
	}
	if want := []string{"Syslog=yes", "Socket=inet:1@localhost", "KeyFile=/a"}; !slices.Equal(got, want) {
		t.Errorf("settings %q, want %q", got, want)
	}
	if len(f.Problems) != 1 || f.Problems[0].Name != "Mode" || f.Problems[0].Line != 6 {
		t.Errorf("problems %+v", f.Problems)
	}
}

// TestOnActions: each On-* value is carried over when vouch has the same
// action (test/onactions_test.go compares the outcome with the real
// OpenDKIM), and listed as not carried over otherwise.
func TestOnActions(t *testing.T) {
	tests := []struct {
		conf                string
		dkimFail, tempError string
		always              bool
		mode                string
		notCarried, notes   []string
	}{
		{conf: "On-BadSignature reject\n", dkimFail: "reject", tempError: "tempfail", always: true, mode: "enforce"},
		{conf: "On-BadSignature q\n", dkimFail: "quarantine", tempError: "tempfail", always: true, mode: "enforce"},
		{conf: "On-BadSignature accept\n", dkimFail: "accept", tempError: "tempfail", mode: "trial", notes: []string{"On-BadSignature"}},
		{conf: "On-BadSignature discard\n", dkimFail: "accept", tempError: "tempfail", notCarried: []string{"On-BadSignature"}},
		{conf: "On-DNSError accept\n", dkimFail: "accept", tempError: "accept", notes: []string{"On-DNSError"}},
		{conf: "On-DNSError reject\n", dkimFail: "accept", tempError: "tempfail", notCarried: []string{"On-DNSError"}},
		{conf: "On-NoSignature accept\nOn-KeyNotFound a\nOn-InternalError tempfail\nOn-SignatureError t\n", dkimFail: "accept", tempError: "tempfail",
			notes: []string{"On-NoSignature", "On-KeyNotFound", "On-InternalError", "On-SignatureError"}},
		{conf: "On-NoSignature reject\nOn-KeyNotFound tempfail\nOn-InternalError accept\nOn-SignatureError reject\nOn-Security tempfail\n", dkimFail: "accept", tempError: "tempfail",
			notCarried: []string{"On-NoSignature", "On-KeyNotFound", "On-InternalError", "On-SignatureError", "On-Security"}},
		{conf: "On-BadSignature bogus\n", dkimFail: "accept", tempError: "tempfail", notCarried: []string{"On-BadSignature"}},
		{conf: "Mode s\nOn-BadSignature reject\n", dkimFail: "accept", tempError: "tempfail", notCarried: []string{"On-BadSignature"}},
	}
	for _, tc := range tests {
		t.Run(tc.conf, func(t *testing.T) {
			res, cfg, _ := convert(t, tc.conf, nil)
			v := cfg.Verify
			want := tc.mode
			if want == "" {
				want = "trial"
			}
			if v.DKIMFail != tc.dkimFail || v.TempError != tc.tempError || v.DKIMFailWhenDMARCPasses != tc.always || cfg.Mode != "trial" || cfg.VerifyMode() != want {
				t.Errorf("dkim_fail %q temp_error %q when_dmarc_passes %v mode %q verify mode %q\n%s", v.DKIMFail, v.TempError, v.DKIMFailWhenDMARCPasses, cfg.Mode, cfg.VerifyMode(), res.TOML)
			}
			for _, o := range tc.notCarried {
				if !slices.ContainsFunc(res.NotCarried, func(it Item) bool { return it.Option == o }) {
					t.Errorf("%s not listed as not carried over: %v", o, res.NotCarried)
				}
			}
			for _, o := range tc.notes {
				if !slices.ContainsFunc(res.Notes, func(it Item) bool { return it.Option == o }) {
					t.Errorf("%s has no note: %v", o, res.Notes)
				}
			}
		})
	}
}
