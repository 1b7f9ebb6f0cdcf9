package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"vouch/internal/mtaclient"
	"vouch/internal/testutil"
)

// zimbraConf is an opendkim.conf in the style Zimbra 8.8-10 generates
// (zm-mta opendkim.conf.in): OpenDKIM on 8465 behind the dkimmilter
// smtpd, LDAP options, and InternalHosts from zimbraMtaMyNetworks, here
// with the KeyTable and SigningTable in files instead of LDAP, as admins
// set it up by hand.
const zimbraConf = `# Zimbra-style OpenDKIM configuration, tables in files
UserID                zimbra:zimbra
UMask                 022
Socket                inet:8465@[127.0.0.1]
PidFile               /opt/zimbra/log/opendkim.pid

LDAPBindUser          uid=zmpostfix,cn=appaccts,cn=zimbra
LDAPBindPassword      not-a-real-password
LDAPUseTLS            no
LDAPTimeout           30
KeyTable              file:DIR/opendkim/KeyTable
SigningTable          refile:DIR/opendkim/SigningTable
InternalHosts         file:DIR/opendkim/opendkim-localnets.conf
Canonicalization      relaxed/relaxed
SignHeaders           message-id,date,from,mime-version,to
ReportAddress         postmaster@corp.test

On-BadSignature       accept
On-DNSError           tempfail
On-InternalError      tempfail
On-NoSignature        accept
On-Security           tempfail

AuthservIDWithJobId   yes
AutoRestart           yes
AutoRestartRate       10/1h
Background            yes
MaximumHeaders        65536
Mode                  s
MultipleSignatures    no
RequireSafeKeys       yes
SignatureAlgorithm    rsa-sha256
SignatureTTL          0
SubDomains            no
LogWhy                yes
Syslog                yes
SyslogFacility        LOCAL0
SoftwareHeader        yes
TemporaryDirectory    /opt/zimbra/data/tmp
`

// TestImportOpenDKIM converts realistic OpenDKIM configurations with
// `vouch import-opendkim`, checks that every option vouch cannot take
// over is listed, then runs `vouch serve` on the result (listen patched
// to a free port) and signs through it: the converted configuration uses
// the same KeyTable, SigningTable and InternalHosts files and signs as
// OpenDKIM would have.
func TestImportOpenDKIM(t *testing.T) {
	debian, err := os.ReadFile("../internal/opendkimconf/testdata/debian-bookworm.conf")
	if err != nil {
		t.Fatal(err)
	}
	type sample struct {
		from, clientIP string
		want           []string // "d=… s=…" of the signatures; none: unsigned
	}
	for _, tc := range []struct {
		name       string
		conf       string
		hosts      string   // the InternalHosts file
		notCarried []string // options the converter must list as not carried over
		messages   []sample
	}{
		{
			name: "Debian default plus tables",
			conf: string(debian) + `
# Added by the admin: Zimbra-style tables and trusted hosts.
KeyTable		DIR/opendkim/KeyTable
SigningTable		refile:DIR/opendkim/SigningTable
InternalHosts		refile:DIR/opendkim/TrustedHosts
ExternalIgnoreList	refile:DIR/opendkim/TrustedHosts
`,
			hosts:      "# no loopback: InternalHosts replaces OpenDKIM's default\n10.0.0.0/8\n192.168.0.0/16\n",
			notCarried: []string{"Syslog", "UserID", "PidFile", "TrustAnchorFile", "Canonicalization", "ExternalIgnoreList"},
			messages: []sample{
				{"alice@corp.test", "10.1.2.3", []string{"d=corp.test s=zimbra"}},
				{"bob@sales.corp.test", "192.168.7.7", []string{"d=corp.test s=zimbra"}},
				{"carol@shop.test", "10.1.2.3", []string{"d=shop.test s=s2026"}},
				{"alice@corp.test", "127.0.0.1", nil},
				{"alice@corp.test", "198.51.100.7", nil},
				{"dave@nokey.test", "10.1.2.3", nil},
			},
		},
		{
			name:  "Zimbra",
			conf:  zimbraConf,
			hosts: "127.0.0.0/8\n[::1]/128\n10.0.0.0/24\n",
			notCarried: []string{"UserID", "UMask", "PidFile", "LDAPBindUser", "LDAPBindPassword", "LDAPUseTLS", "LDAPTimeout",
				"ReportAddress", "On-BadSignature", "On-DNSError", "On-NoSignature", "On-Security",
				"AuthservIDWithJobID", "AutoRestart", "AutoRestartRate", "Background", "MaximumHeaders", "LogWhy", "Syslog",
				"SyslogFacility", "SoftwareHeader", "TemporaryDirectory"},
			messages: []sample{
				{"alice@corp.test", "127.0.0.1", []string{"d=corp.test s=zimbra"}},
				{"alice@corp.test", "::1", []string{"d=corp.test s=zimbra"}},
				{"carol@shop.test", "10.0.0.9", []string{"d=shop.test s=s2026"}},
				{"alice@corp.test", "10.0.1.9", nil},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			z := newZone(t)
			z.genkey(t, dir+"/keys/corp.test", "corp.test", "zimbra", "rsa")
			z.genkey(t, dir+"/keys/shop.test", "shop.test", "s2026", "rsa")
			os.MkdirAll(dir+"/opendkim", 0o755)
			write(t, dir+"/opendkim/KeyTable", fmt.Sprintf(`zimbra._domainkey.corp.test corp.test:zimbra:%[1]s/keys/corp.test/zimbra.private
s2026._domainkey.shop.test  shop.test:s2026:%[1]s/keys/shop.test/s2026.private
`, dir))
			write(t, dir+"/opendkim/SigningTable", `*@corp.test     zimbra._domainkey.corp.test
*@*.corp.test   zimbra._domainkey.corp.test
*@shop.test     s2026._domainkey.shop.test
`)
			write(t, dir+"/opendkim/TrustedHosts", tc.hosts)
			write(t, dir+"/opendkim/opendkim-localnets.conf", tc.hosts)
			confPath := filepath.Join(dir, "opendkim.conf")
			write(t, confPath, strings.ReplaceAll(tc.conf, "DIR", dir))

			var stdout, stderr bytes.Buffer
			cmd := exec.Command(vouchBin, "import-opendkim", confPath)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("vouch import-opendkim: %v\n%s", err, stderr.String())
			}
			t.Logf("converted:\n%s", stdout.String())
			for _, opt := range tc.notCarried {
				if !strings.Contains(stderr.String(), "not carried over: "+opt+" (") {
					t.Errorf("stderr does not list %s:\n%s", opt, stderr.String())
				}
				if !regexp.MustCompile(`(?m)^#   ` + regexp.QuoteMeta(opt) + ` \(`).Match(stdout.Bytes()) {
					t.Errorf("the TOML header does not list %s", opt)
				}
			}

			// The changes for this test: a free port, and the test DNS
			// (vouch verifies untrusted mail) instead of resolv.conf.
			port := freePort(t)
			listen := regexp.MustCompile(`(?m)^listen = .*$`)
			if !listen.Match(stdout.Bytes()) || bytes.Contains(stdout.Bytes(), []byte("\n[dns]")) {
				t.Fatalf("no listen line, or a [dns] table:\n%s", stdout.String())
			}
			path := filepath.Join(dir, "vouch.toml")
			write(t, path, listen.ReplaceAllString(stdout.String(), fmt.Sprintf(`listen = "inet:%d@127.0.0.1"`, port))+
				fmt.Sprintf("\n[dns]\nservers = [%q]\ntimeout = \"2s\"\n", z.Addr))
			if out, err := exec.Command(vouchBin, "serve", "-check", "-config", path).CombinedOutput(); err != nil {
				t.Fatalf("vouch serve -check: %v\n%s", err, out)
			}
			v := &vouch{t: t, port: port, config: path, logs: &testutil.LogBuffer{}}
			v.start()
			t.Cleanup(func() {
				v.stop()
				if t.Failed() || os.Getenv("VOUCH_E2E_LOGS") != "" {
					t.Logf("vouch log:\n%s", v.logs.String())
				}
			})

			for i, m := range tc.messages {
				marker := fmt.Sprintf("import-%d", i)
				headers, body := mtaclient.Split([]byte(message(m.from, marker)))
				r, err := mtaclient.Send(mtaclient.NewClient("tcp", v.addr()), &mtaclient.Message{
					ClientIP: m.clientIP, HELO: "client.example.test", From: m.from, Rcpts: []string{"bob@remote.test"},
					QueueID: "IMPORT" + fmt.Sprint(i), Headers: headers, Body: bytes.NewReader(body),
				})
				if err != nil {
					t.Fatalf("%s from %s: %v", m.from, m.clientIP, err)
				}
				if !r.Accepted() {
					t.Fatalf("%s from %s: stopped at %q: %+v", m.from, m.clientIP, r.Stage, r.Action)
				}
				signed := mtaclient.Render(r.Headers, body)
				var got, signedFields []string
				for _, h := range r.Headers {
					if strings.EqualFold(h.Name, "DKIM-Signature") {
						got = append(got, "d="+dkimTag(h.Value, "d")+" s="+dkimTag(h.Value, "s"))
						signedFields = append(signedFields, strings.ToLower(dkimTag(h.Value, "h")))
					}
				}
				if !slices.Equal(got, m.want) {
					t.Fatalf("%s from %s: signatures %q, want %q\n%s", m.from, m.clientIP, got, m.want, signed)
				}
				if len(got) > 0 {
					z.verifyAll(t, signed)
				}
				for _, h := range signedFields {
					// Zimbra's SignHeaders limits the signed fields,
					// oversigning included.
					if tc.name == "Zimbra" && (h == "" || strings.Contains(h, "subject")) {
						t.Fatalf("h=%s, but Zimbra's SignHeaders leaves Subject out", h)
					}
				}
			}
		})
	}
}

// dkimTag returns a tag's value from a DKIM-Signature field value.
func dkimTag(sig, tag string) string {
	for _, tv := range strings.Split(sig, ";") {
		k, v, _ := strings.Cut(tv, "=")
		if strings.TrimSpace(k) == tag {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}
