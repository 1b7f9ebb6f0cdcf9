package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/go-ldap/ldap/v3"

	"vouch/internal/mtaclient"
	"vouch/internal/testutil"
	"vouch/milter"
	"vouch/signer"
)

// The LDAP tests run a private OpenLDAP slapd (Debian's slapd package,
// never its system configuration) with Zimbra's DKIM schema and access
// rules, and vouch configured with the URLs Zimbra writes into
// opendkim.conf.

const (
	slapdBin   = "/usr/sbin/slapd"
	slapaddBin = "/usr/sbin/slapadd"
	// Zimbra's MTA bind account (opendkim.conf.in LDAPBindUser) and a
	// password for it.
	zmpostfixDN = "uid=zmpostfix,cn=appaccts,cn=zimbra"
	zmpostfixPW = "zmpostfix-Secret-42"
)

func requireSlapd(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(slapdBin); err != nil {
		if os.Getenv("VOUCH_SKIP_E2E") != "" {
			t.Skip("slapd not installed and VOUCH_SKIP_E2E set")
		}
		t.Fatal("slapd is not installed: run .ci/run (or: echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections; apt-get install slapd ldap-utils) or set VOUCH_SKIP_E2E=1")
	}
}

// ldapSchema is Zimbra's opendkim.ldif (zm-ldap-utilities
// conf/ldap/opendkim.ldif) in slapd.conf syntax: OpenDKIM's attribute
// OIDs (PEN 29426) plus DKIMPublicKey, and DKIM as an auxiliary class on
// the domain entry.
const ldapSchema = `attributetype ( 1.3.6.1.4.1.29426.2.2.1.1 NAME 'DKIMSelector' DESC 'Selector name associated with DKIM signing key' EQUALITY caseExactIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.29426.2.2.1.2 NAME 'DKIMKey' DESC 'DKIM signing key' EQUALITY caseExactIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.29426.2.2.1.3 NAME 'DKIMIdentity' DESC 'The Agent or User Identifier (AUID)' EQUALITY caseExactIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.29426.2.2.1.4 NAME 'DKIMDomain' DESC 'DKIM sender domain' EQUALITY caseExactIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.29426.2.2.1.5 NAME 'DKIMPublicKey' DESC 'DKIM signing key' EQUALITY caseExactIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.29426.2.2.2.1 NAME 'DKIM' DESC 'DKIM Selector and Key container' SUP top AUXILIARY MUST ( DKIMSelector $ DKIMKey $ DKIMPublicKey ) MAY ( DKIMIdentity $ DKIMDomain ) )
`

// ldapConf is a slapd.conf like Zimbra's database: the empty suffix (the
// URLs have an empty base DN), the DKIM indexes, and the access rules of
// olcDatabase={2}mdb that matter here: zmpostfix may read the DKIM
// attributes except DKIMPublicKey, nobody else may.
const ldapConf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include DIR/dkim.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile DIR/slapd.pid
argsfile DIR/slapd.args
TLS
database mdb
suffix ""
directory DIR/db
maxsize 16777216
index objectClass eq
index DKIMIdentity eq
index DKIMSelector eq
access to attrs=userPassword by anonymous auth by * none
access to attrs=objectClass by dn.base="` + zmpostfixDN + `" read by users read by * none
access to attrs=DKIMIdentity,DKIMSelector,DKIMDomain,DKIMKey by dn.base="` + zmpostfixDN + `" read by * none
access to attrs=entry by * read
access to * by * none
`

// ldapDomain is a domain entry; without a selector it has no DKIM
// attributes (a Zimbra domain where zmdkimkeyutil -a was never run).
type ldapDomain struct {
	domain, selector string
	key, public      string // DKIMKey (the PEM text) and DKIMPublicKey
}

// newLDAPDomain makes a key with `vouch genkey` (published in z) and the
// domain entry zmdkimkeyutil -a would write: DKIMDomain and DKIMIdentity
// are the domain, DKIMKey the whole .private file, DKIMPublicKey the .txt.
func newLDAPDomain(t testing.TB, z *zone, dir, domain, selector string) ldapDomain {
	t.Helper()
	private := z.genkey(t, filepath.Join(dir, domain), domain, selector, "rsa")
	key, err := os.ReadFile(private)
	if err != nil {
		t.Fatal(err)
	}
	public, err := os.ReadFile(strings.TrimSuffix(private, ".private") + ".txt")
	if err != nil {
		t.Fatal(err)
	}
	return ldapDomain{domain: domain, selector: selector, key: string(key), public: string(public)}
}

func ldif(domains []ldapDomain) string {
	var b strings.Builder
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	fmt.Fprintf(&b, "dn: cn=zimbra\nobjectClass: organizationalRole\ncn: zimbra\n\n")
	fmt.Fprintf(&b, "dn: cn=appaccts,cn=zimbra\nobjectClass: organizationalRole\ncn: appaccts\n\n")
	fmt.Fprintf(&b, "dn: %s\nobjectClass: account\nobjectClass: simpleSecurityObject\nuid: zmpostfix\nuserPassword:: %s\n\n", zmpostfixDN, b64(zmpostfixPW))
	seen := map[string]bool{}
	for _, d := range domains {
		labels := strings.Split(d.domain, ".")
		for i := len(labels) - 1; i >= 0; i-- {
			dn := "dc=" + strings.Join(labels[i:], ",dc=")
			if seen[dn] {
				continue
			}
			seen[dn] = true
			fmt.Fprintf(&b, "dn: %s\nobjectClass: domain\ndc: %s\n", dn, labels[i])
			if i == 0 && d.selector != "" {
				fmt.Fprintf(&b, "objectClass: DKIM\nDKIMSelector: %s\nDKIMDomain: %s\nDKIMIdentity: %s\nDKIMKey:: %s\nDKIMPublicKey:: %s\n",
					d.selector, d.domain, d.domain, b64(d.key), b64(d.public))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// slapd is a private OpenLDAP server on loopback.
type slapd struct {
	t       testing.TB
	dir     string
	conf    string
	port    int
	tlsPort int // ldaps://, when started with TLS
	logs    *testutil.LogBuffer
	cmd     *exec.Cmd
	exited  chan struct{}
}

// ldapTLS are the files of a test CA and a server certificate for
// 127.0.0.1.
type ldapTLS struct{ ca, cert, key string }

func startSlapd(t testing.TB, dir string, domains []ldapDomain, tlsFiles *ldapTLS) *slapd {
	t.Helper()
	requireSlapd(t)
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "dkim.schema"), ldapSchema)
	tlsConf := ""
	if tlsFiles != nil {
		tlsConf = fmt.Sprintf("TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n", tlsFiles.ca, tlsFiles.cert, tlsFiles.key)
	}
	conf := strings.ReplaceAll(strings.Replace(ldapConf, "TLS\n", tlsConf, 1), "DIR", dir)
	s := &slapd{t: t, dir: dir, conf: filepath.Join(dir, "slapd.conf"), port: freePort(t), logs: &testutil.LogBuffer{}}
	if tlsFiles != nil {
		s.tlsPort = freePort(t)
	}
	write(t, s.conf, conf)
	write(t, filepath.Join(dir, "data.ldif"), ldif(domains))
	if out, err := exec.Command(slapaddBin, "-f", s.conf, "-l", filepath.Join(dir, "data.ldif")).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() || os.Getenv("VOUCH_E2E_LOGS") != "" {
			t.Logf("slapd log (%s):\n%s", s.conf, s.logs.String())
		}
	})
	return s
}

func (s *slapd) start() {
	s.t.Helper()
	urls := s.url() + "/"
	if s.tlsPort != 0 {
		urls += " " + s.ldapsURL() + "/"
	}
	// -d 256: the stats log (connections, binds, searches) on stderr, in
	// the foreground.
	s.cmd = exec.Command(slapdBin, "-d", "256", "-h", urls, "-f", s.conf)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(s.cmd, s.exited)
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	for deadline := time.Now().Add(15 * time.Second); ; {
		select {
		case <-s.exited:
			s.t.Fatalf("slapd exited: %v\n%s", s.cmd.ProcessState, s.logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("slapd does not listen on %s:\n%s", addr, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *slapd) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

func (s *slapd) url() string      { return fmt.Sprintf("ldap://127.0.0.1:%d", s.port) }
func (s *slapd) ldapsURL() string { return fmt.Sprintf("ldaps://127.0.0.1:%d", s.tlsPort) }

var srchFilter = regexp.MustCompile(` SRCH base="[^"]*" scope=\d+ deref=\d+ filter="(.*)"\n`)

// searches lists the filters of the searches slapd has answered so far.
// settledSearches is searches once slapd's log has stopped growing for a
// moment: the log reaches the test through a pipe, so a search a milter
// made may show up only after the milter answered (on a loaded machine,
// one milter's searches were counted as the next one's).
func (s *slapd) settledSearches() []string {
	last := -1
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n := len(s.logs.String())
		if n == last {
			break
		}
		last = n
		time.Sleep(200 * time.Millisecond)
	}
	return s.searches()
}

func (s *slapd) searches() []string {
	var out []string
	for _, m := range srchFilter.FindAllStringSubmatch(s.logs.String(), -1) {
		out = append(out, m[1])
	}
	return out
}

// zimbraLDAPTables are the SigningTable and KeyTable Zimbra writes
// (zmconfigd: each ldap_url server + these suffixes, space separated).
func zimbraLDAPTables(servers ...string) (signingTable, keyTable string) {
	var st, kt []string
	for _, s := range servers {
		st = append(st, s+"/?DKIMSelector?sub?(DKIMIdentity=$d)")
		kt = append(kt, s+"/?DKIMDomain,DKIMSelector,DKIMKey,?sub?(DKIMSelector=$d)")
	}
	return strings.Join(st, " "), strings.Join(kt, " ")
}

// ldapFixture: three Zimbra domains in a directory, two of them with keys
// (selectors are UUIDs, as zmdkimkeyutil makes them).
type ldapFixture struct {
	dir     string
	z       *zone
	domains []ldapDomain
}

func newLDAPFixture(t testing.TB) *ldapFixture {
	t.Helper()
	requireSlapd(t)
	dir := t.TempDir()
	z := newZone(t)
	return &ldapFixture{dir: dir, z: z, domains: []ldapDomain{
		newLDAPDomain(t, z, filepath.Join(dir, "keys"), "one.test", "4A4E3C36-9B2A-11EE-8C90-0242AC120001"),
		newLDAPDomain(t, z, filepath.Join(dir, "keys"), "two.test", "4A4E3C36-9B2A-11EE-8C90-0242AC120002"),
		{domain: "three.test"}, // no DKIM attributes
	}}
}

func (f *ldapFixture) slapd(t testing.TB, name string, tlsFiles *ldapTLS) *slapd {
	t.Helper()
	return startSlapd(t, filepath.Join(f.dir, name), f.domains, tlsFiles)
}

// anonymous as LDAPBindDN makes ldapMilter bind anonymously.
const anonymous = "(anonymous)"

// ldapMilter runs vouch's milter in-process with a signer built from cfg,
// bound as zmpostfix unless cfg says otherwise.
func ldapMilter(t testing.TB, cfg signer.Config) (string, *signer.Signer, *testutil.LogBuffer) {
	t.Helper()
	cfg.InternalHosts = append(cfg.InternalHosts, "127.0.0.1")
	cfg.Headers = []string{"message-id", "date", "from", "mime-version", "to"} // Zimbra's SignHeaders
	cfg.RequireSafeKeys = true
	switch cfg.LDAPBindDN {
	case anonymous:
		cfg.LDAPBindDN = ""
	case "":
		cfg.LDAPBindDN, cfg.LDAPBindPassword = zmpostfixDN, zmpostfixPW
	}
	sg, warnings, err := signer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("warnings: %q", warnings)
	}
	t.Cleanup(sg.Close)
	logs := &testutil.LogBuffer{}
	srv := milter.NewServer(&milter.Env{Signer: sg, MaxHeaders: 1 << 20, Log: slog.New(slog.NewTextHandler(logs, nil))}, milter.Limits{ReadTimeout: time.Minute})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("milter log:\n%s", logs.String())
		}
	})
	ln := testutil.Serve(t, srv, "tcp", "127.0.0.1:0")
	return ln.Addr().String(), sg, logs
}

// sendFrom sends one message from an internal client and returns what
// happened: "tempfail", "unsigned" or the d= of its signature, verified
// with go-msgauth and dkimpy.
func sendFrom(t testing.TB, z *zone, addr, from string) string {
	t.Helper()
	got, msg, err := sendLDAP(addr, from)
	if err != nil {
		t.Fatal(err)
	}
	if msg != nil {
		if vs := z.verifyAll(t, msg); len(vs) != 1 || vs[0] != got {
			t.Fatalf("%s: signed by %s, verified %q", from, got, vs)
		}
	}
	return got
}

// sendLDAP sends one message and returns "tempfail", "unsigned" or the d=
// of its single signature (then also the signed message).
func sendLDAP(addr, from string) (string, []byte, error) {
	headers, body := mtaclient.Split([]byte(message(from, "ldap")))
	r, err := mtaclient.Send(mtaclient.NewClient("tcp", addr), &mtaclient.Message{ClientIP: "127.0.0.1", From: from, Headers: headers, Body: strings.NewReader(string(body))})
	if err != nil {
		return "", nil, err
	}
	if !r.Accepted() {
		if r.Action != nil && r.Action.Type == gomilter.ActionRejectWithCode && r.Action.SMTPCode == 451 {
			return "tempfail", nil, nil
		}
		return "", nil, fmt.Errorf("%s: stage %q action %+v", from, r.Stage, r.Action)
	}
	var d []string
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, "DKIM-Signature") {
			d = append(d, dkimTag(h.Value, "d"))
		}
	}
	switch len(d) {
	case 0:
		return "unsigned", nil, nil
	case 1:
		return d[0], mtaclient.Render(r.Headers, body), nil
	}
	return "", nil, fmt.Errorf("%s: %d signatures", from, len(d))
}

// TestLDAPZimbra: `vouch serve` with Zimbra's LDAP URLs and bind account
// signs mail of both domains with keys from the directory (go-msgauth
// and dkimpy verify the signatures), leaves a domain without DKIM
// attributes and a subdomain unsigned, asks the directory in OpenDKIM's
// order, and never logs the bind password.
func TestLDAPZimbra(t *testing.T) {
	f := newLDAPFixture(t)
	ld := f.slapd(t, "ldap", nil)
	signingTable, keyTable := zimbraLDAPTables(ld.url())
	pwFile := filepath.Join(f.dir, "ldap.pw")
	if err := os.WriteFile(pwFile, []byte(zmpostfixPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	localnets := filepath.Join(f.dir, "opendkim-localnets.conf")
	write(t, localnets, "127.0.0.0/8\n[::1]/128\n10.0.0.0/8\n")
	v := startVouch(t, f.dir, fmt.Sprintf(`
[signing]
internal_hosts = []
internal_hosts_file = %q
headers = ["message-id", "date", "from", "mime-version", "to"]
oversign = []
key_table = %q
signing_table = %q
ldap_bind_dn = %q
ldap_bind_password_file = %q
ldap_use_tls = false
ldap_timeout = "30s"
[screen]
enabled = false
`, localnets, keyTable, signingTable, zmpostfixDN, pwFile))
	if out, err := runVouch("serve", "-check", "-config", v.config); err != nil {
		t.Fatalf("serve -check: %v\n%s", err, out)
	}

	tests := []struct{ from, want string }{
		{"alice@one.test", "one.test"},
		{"bob@two.test", "two.test"},
		{"Carol.Upper@ONE.test", "one.test"},
		{"dave@three.test", "unsigned"},   // domain without DKIM attributes
		{"erin@sub.one.test", "unsigned"}, // OpenDKIM tries .one.test, never one.test
		{"frank@nowhere.test", "unsigned"},
	}
	for _, tc := range tests {
		if got := sendFrom(t, f.z, v.addr(), tc.from); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.from, got, tc.want)
		}
	}
	waitLog(t, v, "result=signed")
	if strings.Contains(v.logs.String(), zmpostfixPW) || strings.Contains(ld.logs.String(), zmpostfixPW) {
		t.Fatal("the bind password is in a log")
	}

	// The directory was asked in OpenDKIM's order, with $d escaped.
	searches := ld.searches()
	want := []string{
		"(DKIMIdentity=dave@three.test)", "(DKIMIdentity=three.test)",
		"(DKIMIdentity=dave@.test)", "(DKIMIdentity=.test)",
		`(DKIMIdentity=dave@\2A)`, `(DKIMIdentity=\2A)`,
	}
	if i := slices.Index(searches, want[0]); i < 0 || !slices.Equal(searches[i:i+len(want)], want) {
		t.Fatalf("searches for dave@three.test: want %q in\n%q", want, searches)
	}
	if !slices.Contains(searches, "(DKIMIdentity=Carol.Upper@one.test)") {
		t.Fatalf("the local part is not asked as written: %q", searches)
	}
	if !slices.Contains(searches, "(DKIMSelector=4A4E3C36-9B2A-11EE-8C90-0242AC120001)") {
		t.Fatalf("the key table was not asked by selector: %q", searches)
	}
}

// TestLDAPWrongBindPassword: a wrong bind password stops vouch at start
// (serve -check and serve) with the server and the bind DN named, and
// without the password.
func TestLDAPWrongBindPassword(t *testing.T) {
	f := newLDAPFixture(t)
	ld := f.slapd(t, "ldap", nil)
	signingTable, keyTable := zimbraLDAPTables(ld.url())
	const wrong = "not-the-Password-99"
	cfg := filepath.Join(f.dir, "vouch.toml")
	write(t, cfg, fmt.Sprintf(`listen = "inet:%d@127.0.0.1"
[signing]
key_table = %q
signing_table = %q
ldap_bind_dn = %q
ldap_bind_password = %q
[screen]
enabled = false
`, freePort(t), keyTable, signingTable, zmpostfixDN, wrong))
	want := fmt.Sprintf(`signing: LDAP: %s: bind as "%s" refused: invalid credentials (LDAP result 49)`, ld.url(), zmpostfixDN)
	for _, args := range [][]string{{"serve", "-check", "-config", cfg}, {"serve", "-config", cfg}} {
		out, err := runVouch(args...)
		if exitStatus(err) != 1 || !strings.Contains(out, want) {
			t.Errorf("vouch %s: exit %d, want 1 and %q in:\n%s", strings.Join(args, " "), exitStatus(err), want, out)
		}
		if strings.Contains(out, wrong) {
			t.Errorf("vouch %s shows the password:\n%s", strings.Join(args, " "), out)
		}
	}
	_, _, err := signer.New(signer.Config{Headers: []string{"From"}, KeyTable: keyTable, SigningTable: signingTable, LDAPBindDN: zmpostfixDN, LDAPBindPassword: wrong})
	if err == nil || !strings.Contains(err.Error(), want[len("signing: "):]) {
		t.Fatalf("signer.New: %v", err)
	}
}

// TestLDAPOutage: with slapd stopped, mail whose answers are cached keeps
// being signed until the TTL, uncached mail is tempfailed (never sent
// unsigned), and signing resumes when slapd is back.
func TestLDAPOutage(t *testing.T) {
	f := newLDAPFixture(t)
	ld := f.slapd(t, "ldap", nil)
	signingTable, keyTable := zimbraLDAPTables(ld.url())
	const ttl = 4 * time.Second
	addr, sg, logs := ldapMilter(t, signer.Config{KeyTable: keyTable, SigningTable: signingTable, LDAPCacheTTL: ttl, LDAPTimeout: 2 * time.Second})

	filled := time.Now()
	if got := sendFrom(t, f.z, addr, "alice@one.test"); got != "one.test" {
		t.Fatalf("before the outage: %s", got)
	}
	if got := sendFrom(t, f.z, addr, "dave@three.test"); got != "unsigned" {
		t.Fatalf("before the outage, no key: %s", got)
	}
	queries := sg.LDAPQueries()
	if queries != 3+6 {
		t.Fatalf("%d LDAP queries for 2 messages, want 9", queries)
	}

	ld.stop()
	for range 3 {
		if got := sendFrom(t, f.z, addr, "alice@one.test"); got != "one.test" {
			t.Fatalf("cached key, slapd down: %s", got)
		}
		if got := sendFrom(t, f.z, addr, "dave@three.test"); got != "unsigned" {
			t.Fatalf("cached \"no key\", slapd down: %s", got)
		}
	}
	if n := sg.LDAPQueries(); n != queries {
		t.Fatalf("%d LDAP queries while cached, want none", n-queries)
	}
	for _, from := range []string{"bob@two.test", "zoe@one.test", "new@elsewhere.test"} {
		if got := sendFrom(t, f.z, addr, from); got != "tempfail" {
			t.Fatalf("%s, not cached, slapd down: %s", from, got)
		}
	}
	if time.Since(filled) >= ttl {
		t.Fatalf("the test took longer than the TTL (%s): the cached sends prove nothing", ttl)
	}
	waitLog2(t, logs, `signing key unavailable: LDAP signing table lookup of \"bob@two.test\": `+ld.url()+": ")

	time.Sleep(time.Until(filled.Add(ttl + 100*time.Millisecond)))
	if got := sendFrom(t, f.z, addr, "alice@one.test"); got != "tempfail" {
		t.Fatalf("after the TTL, slapd down: %s", got)
	}

	ld.start()
	for _, tc := range []struct{ from, want string }{{"alice@one.test", "one.test"}, {"bob@two.test", "two.test"}, {"dave@three.test", "unsigned"}} {
		if got := sendFrom(t, f.z, addr, tc.from); got != tc.want {
			t.Fatalf("%s, slapd back: %s, want %s", tc.from, got, tc.want)
		}
	}
}

func waitLog2(t testing.TB, logs *testutil.LogBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(logs.String(), want) {
			return
		}
	}
	t.Fatalf("never logged %q:\n%s", want, logs.String())
}

// TestLDAPFailover: the second URL takes over when the first server is
// down, at start and while running, without a tempfail.
func TestLDAPFailover(t *testing.T) {
	f := newLDAPFixture(t)
	a := f.slapd(t, "a", nil)
	b := f.slapd(t, "b", nil)
	signingTable, keyTable := zimbraLDAPTables(a.url(), b.url())
	addr, _, _ := ldapMilter(t, signer.Config{KeyTable: keyTable, SigningTable: signingTable})

	if got := sendFrom(t, f.z, addr, "alice@one.test"); got != "one.test" {
		t.Fatalf("both up: %s", got)
	}
	if len(a.searches()) != 3 || len(b.searches()) != 0 {
		t.Fatalf("both up: %d searches on the first server, %d on the second; want 3 and 0", len(a.searches()), len(b.searches()))
	}
	a.stop()
	if got := sendFrom(t, f.z, addr, "bob@two.test"); got != "two.test" {
		t.Fatalf("first server stopped while running: %s", got)
	}
	if len(b.searches()) != 3 {
		t.Fatalf("first server stopped: %d searches on the second, want 3", len(b.searches()))
	}

	// Started while the first server is down.
	addr2, _, _ := ldapMilter(t, signer.Config{KeyTable: keyTable, SigningTable: signingTable})
	if got := sendFrom(t, f.z, addr2, "carol@one.test"); got != "one.test" {
		t.Fatalf("started with the first server down: %s", got)
	}
	b.stop()
	if got := sendFrom(t, f.z, addr2, "dave@two.test"); got != "tempfail" {
		t.Fatalf("both down: %s", got)
	}
}

// TestLDAPTLS: StartTLS (ldap_use_tls) and ldaps://, with the server
// certificate checked against ldap_tls_ca_file; a certificate that does
// not check out stops vouch at start.
func TestLDAPTLS(t *testing.T) {
	f := newLDAPFixture(t)
	tlsFiles := makeLDAPCerts(t, filepath.Join(f.dir, "tls"))
	ld := f.slapd(t, "ldap", tlsFiles)

	signingTable, keyTable := zimbraLDAPTables(ld.url())
	addr, _, _ := ldapMilter(t, signer.Config{KeyTable: keyTable, SigningTable: signingTable, LDAPUseTLS: true, LDAPTLSCAFile: tlsFiles.ca})
	if got := sendFrom(t, f.z, addr, "alice@one.test"); got != "one.test" {
		t.Fatalf("StartTLS: %s", got)
	}
	if !strings.Contains(ld.logs.String(), "EXT oid=1.3.6.1.4.1.1466.20037") {
		t.Fatal("no StartTLS in the slapd log")
	}

	signingTable, keyTable = zimbraLDAPTables(ld.ldapsURL())
	addr, _, _ = ldapMilter(t, signer.Config{KeyTable: keyTable, SigningTable: signingTable, LDAPTLSCAFile: tlsFiles.ca})
	if got := sendFrom(t, f.z, addr, "bob@two.test"); got != "two.test" {
		t.Fatalf("ldaps: %s", got)
	}

	signingTable, keyTable = zimbraLDAPTables(ld.url())
	_, _, err := signer.New(signer.Config{Headers: []string{"From"}, KeyTable: keyTable, SigningTable: signingTable,
		LDAPBindDN: zmpostfixDN, LDAPBindPassword: zmpostfixPW, LDAPUseTLS: true})
	if err == nil || !strings.Contains(err.Error(), ld.url()+": StartTLS: ") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("StartTLS, certificate of an unknown CA: %v", err)
	}
}

// TestLDAPAccessRules: bound anonymously, the access rules hide the DKIM
// attributes: nothing is found, nothing is signed (as with OpenDKIM
// without LDAPBindUser).
func TestLDAPAccessRules(t *testing.T) {
	f := newLDAPFixture(t)
	ld := f.slapd(t, "ldap", nil)
	signingTable, keyTable := zimbraLDAPTables(ld.url())
	addr, _, _ := ldapMilter(t, signer.Config{KeyTable: keyTable, SigningTable: signingTable, LDAPBindDN: anonymous})
	if got := sendFrom(t, f.z, addr, "alice@one.test"); got != "unsigned" {
		t.Fatalf("anonymous: %s", got)
	}
}

// TestLDAPSideBySideOpenDKIM: the real OpenDKIM (Debian's, built with
// USE_LDAP) with Zimbra's LDAP settings and vouch without a cache, over
// the same directory: the same outcome for every message, and the same
// LDAP searches in the same order.
func TestLDAPSideBySideOpenDKIM(t *testing.T) {
	requireOpenDKIM(t)
	f := newLDAPFixture(t)
	ld := f.slapd(t, "ldap", nil)
	signingTable, keyTable := zimbraLDAPTables(ld.url())
	od := startOpenDKIM(t, f.dir, fmt.Sprintf(`Mode			s
Canonicalization	relaxed/relaxed
SignHeaders		message-id,date,from,mime-version,to
SubDomains		no
On-InternalError	tempfail
InternalHosts		csl:127.0.0.1
LDAPBindUser		%s
LDAPBindPassword	%s
LDAPUseTLS		no
LDAPTimeout		30
SigningTable		%s
KeyTable		%s
MultipleSignatures	no
RequireSafeKeys		yes
Syslog			no
LogWhy			yes
`, zmpostfixDN, zmpostfixPW, signingTable, keyTable))
	v, _, _ := ldapMilter(t, signer.Config{KeyTable: keyTable, SigningTable: signingTable, LDAPCacheTTL: 0})

	for i, from := range []string{"alice@one.test", "bob@two.test", "Carol.Upper@One.Test", "dave@three.test", "erin@sub.one.test",
		"x*y@one.test", "frank@nowhere.test"} {
		headers, body := mtaclient.Split([]byte(message(from, fmt.Sprintf("side-ldap-%d", i))))
		send := func(addr string) ([]string, []string) {
			t.Helper()
			before := len(ld.settledSearches())
			r, err := sendPostfixLike(addr, &mtaclient.Message{ClientIP: "127.0.0.1", From: from, Rcpts: []string{"bob@remote.test"}, QueueID: fmt.Sprintf("LDAP%d", i),
				Headers: headers, Body: strings.NewReader(string(body))})
			if err != nil {
				t.Fatalf("%s: milter %s: %v", from, addr, err)
			}
			got := outcome(t, r)
			if len(got) > 0 && got[0] != "tempfail" {
				f.z.verifyAll(t, mtaclient.Render(r.Headers, body))
			}
			return got, ld.settledSearches()[before:]
		}
		gotOD, searchesOD := send(od)
		gotV, searchesV := send(v)
		if !slices.Equal(gotOD, gotV) {
			t.Errorf("From %s:\n  opendkim: %q\n  vouch:    %q", from, gotOD, gotV)
		}
		if !slices.Equal(searchesOD, searchesV) {
			t.Errorf("From %s, LDAP searches:\n  opendkim: %q\n  vouch:    %q", from, searchesOD, searchesV)
		}
		if len(searchesV) == 0 {
			t.Errorf("From %s: no search", from)
		}
	}
}

// TestLDAPQueriesPer1000: 1000 messages from 60 senders of three domains,
// sent 8 at a time, with the default cache (60s) and without: how many
// LDAP searches each needs.
func TestLDAPQueriesPer1000(t *testing.T) {
	f := newLDAPFixture(t)
	ld := f.slapd(t, "ldap", nil)
	signingTable, keyTable := zimbraLDAPTables(ld.url())
	var senders []string
	for i := range 20 {
		for _, d := range []string{"one.test", "two.test", "three.test"} {
			senders = append(senders, fmt.Sprintf("user%d@%s", i, d))
		}
	}
	for _, ttl := range []time.Duration{time.Minute, 0} {
		addr, sg, _ := ldapMilter(t, signer.Config{KeyTable: keyTable, SigningTable: signingTable, LDAPCacheTTL: ttl})
		before := len(ld.searches())
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		results := map[string]int{}
		next := make(chan string)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for from := range next {
					got, _, err := sendLDAP(addr, from)
					if err != nil {
						got = err.Error()
					}
					mu.Lock()
					results[got]++
					mu.Unlock()
				}
			}()
		}
		for i := range 1000 {
			next <- senders[i%len(senders)]
		}
		close(next)
		wg.Wait()
		// 334 messages per signing domain (selector found at the second
		// key), 333 from three.test (all six keys asked).
		if results["one.test"] != 334 || results["two.test"] != 333 || results["unsigned"] != 333 {
			t.Fatalf("outcomes %v", results)
		}
		queries := sg.LDAPQueries()
		if server := uint64(len(ld.searches()) - before); server != queries {
			t.Fatalf("vouch counted %d queries, slapd answered %d", queries, server)
		}
		t.Logf("ldap_cache_ttl=%s: %d LDAP queries for 1000 messages (%.1f s)", ttl, queries, time.Since(start).Seconds())
		want := uint64(334*3 + 333*3 + 333*6)
		if ttl > 0 {
			// Each distinct key once: 20 user@ keys and the domain per
			// signing domain, plus its selector; for three.test 20 user@,
			// the domain, 20 user@.test, .test, 20 user@*, *.
			want = 2*(20+1+1) + (20 + 1 + 20 + 1 + 20 + 1)
		}
		if queries != want {
			t.Fatalf("ldap_cache_ttl=%s: %d queries, want %d", ttl, queries, want)
		}
	}
}

// BenchmarkLDAPConnection compares a query on vouch's shared connection
// with a connection per query (dial, bind, search, unbind), on a local
// slapd: go test ./test -run '^$' -bench LDAPConnection
func BenchmarkLDAPConnection(b *testing.B) {
	f := newLDAPFixture(b)
	tlsFiles := makeLDAPCerts(b, filepath.Join(f.dir, "tls"))
	ld := f.slapd(b, "ldap", tlsFiles)
	req := func() *ldap.SearchRequest {
		return ldap.NewSearchRequest("", ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 5, false,
			"(DKIMIdentity=one.test)", []string{"DKIMSelector"}, nil)
	}
	dial := func(b *testing.B) *ldap.Conn {
		c, err := ldap.DialURL(ld.url())
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Bind(zmpostfixDN, zmpostfixPW); err != nil {
			b.Fatal(err)
		}
		return c
	}
	b.Run("shared", func(b *testing.B) {
		c := dial(b)
		defer c.Close()
		for b.Loop() {
			if _, err := c.Search(req()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("shared-parallel", func(b *testing.B) {
		c := dial(b)
		defer c.Close()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Search(req()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("per-query", func(b *testing.B) {
		for b.Loop() {
			c := dial(b)
			if _, err := c.Search(req()); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("per-query-starttls", func(b *testing.B) {
		roots := x509.NewCertPool()
		caPEM, err := os.ReadFile(tlsFiles.ca)
		if err != nil || !roots.AppendCertsFromPEM(caPEM) {
			b.Fatal("CA", err)
		}
		for b.Loop() {
			c, err := ldap.DialURL(ld.url())
			if err != nil {
				b.Fatal(err)
			}
			if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1", RootCAs: roots}); err != nil {
				b.Fatal(err)
			}
			if err := c.Bind(zmpostfixDN, zmpostfixPW); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Search(req()); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("signer-lookup-uncached", func(b *testing.B) {
		signingTable, keyTable := zimbraLDAPTables(ld.url())
		sg, _, err := signer.New(signer.Config{Headers: []string{"From"}, KeyTable: keyTable, SigningTable: signingTable,
			LDAPBindDN: zmpostfixDN, LDAPBindPassword: zmpostfixPW})
		if err != nil {
			b.Fatal(err)
		}
		defer sg.Close()
		for b.Loop() {
			if reqs, err := sg.Lookup("alice", "one.test"); err != nil || len(reqs) != 1 {
				b.Fatal(reqs, err)
			}
		}
	})
}

// makeLDAPCerts writes a CA and a certificate for 127.0.0.1 signed by it.
func makeLDAPCerts(t testing.TB, dir string) *ldapTLS {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vouch test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := &ldapTLS{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server.key")}
	for path, block := range map[string]*pem.Block{
		files.ca:   {Type: "CERTIFICATE", Bytes: caDER},
		files.cert: {Type: "CERTIFICATE", Bytes: der},
		files.key:  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// TestLDAPImportZimbraConf: Zimbra's generated opendkim.conf, converted by
// `vouch import-opendkim`, signs against the directory.
func TestLDAPImportZimbraConf(t *testing.T) {
	f := newLDAPFixture(t)
	ld := f.slapd(t, "ldap", nil)
	signingTable, keyTable := zimbraLDAPTables(ld.url())
	localnets := filepath.Join(f.dir, "opendkim-localnets.conf")
	write(t, localnets, "127.0.0.0/8\n[::1]/128\n")
	conf := filepath.Join(f.dir, "opendkim.conf")
	// As zm-mta's opendkim.conf.in generates it (values filled in).
	write(t, conf, fmt.Sprintf(`AutoRestart             Yes
AutoRestartRate         10/1h
Canonicalization        relaxed/relaxed
ExternalIgnoreList      refile:/opt/zimbra/conf/opendkim-localnets.conf
InternalHosts           file:%s
KeyTable                %s
LDAPBindPassword        %s
LDAPBindUser            %s
LDAPUseTLS              0
LDAPTimeout             30
LogWhy                  Yes
Mode                    s
On-InternalError        tempfail
PidFile                 /opt/zimbra/log/opendkim.pid
SignHeaders             message-id,date,from,mime-version,to
SigningTable            %s
Socket                  inet:8465@[127.0.0.1]
SubDomains              no
Syslog                  Yes
SyslogSuccess           Yes
TemporaryDirectory      /opt/zimbra/data/tmp
UMask                   022
UserID                  zimbra:zimbra
`, localnets, keyTable, zmpostfixPW, zmpostfixDN, signingTable))
	secret := filepath.Join(f.dir, "ldap.secret")
	out, err := exec.Command(vouchBin, "import-opendkim", "-ldap-password-file", secret, conf).Output()
	if err != nil {
		t.Fatalf("import-opendkim: %v\n%s", err, out)
	}
	converted := string(out)
	for _, want := range []string{`listen = "inet:8465@[127.0.0.1]"`, "ldap_bind_dn = ", "internal_hosts_file = ", `ldap_bind_password_file = "` + secret + `"`} {
		if !strings.Contains(converted, want) {
			t.Fatalf("converted config lacks %q:\n%s", want, converted)
		}
	}
	// The password went into its own 0600 file, not into the TOML.
	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 || strings.Contains(converted, zmpostfixPW) {
		t.Fatalf("password file %v (%v); in the TOML: %v", fi, err, strings.Contains(converted, zmpostfixPW))
	}
	// Run it on a free port instead of 8465.
	var kept []string
	for _, line := range strings.Split(converted, "\n") {
		if !strings.HasPrefix(line, "listen = ") {
			kept = append(kept, line)
		}
	}
	v := startVouch(t, f.dir, strings.Join(kept, "\n"))
	for _, tc := range []struct{ from, want string }{{"alice@one.test", "one.test"}, {"bob@two.test", "two.test"}, {"x@nowhere.test", "unsigned"}} {
		if got := sendFrom(t, f.z, v.addr(), tc.from); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.from, got, tc.want)
		}
	}
}
