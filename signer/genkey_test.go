package signer

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"vouch/internal/testutil"
)

// bindRecord is a SELECTOR.txt record taken apart.
type bindRecord struct {
	owner   string
	strings []string // the character-strings, unquoted
	comment string
}

// recordRE is opendkim-genkey's layout (opendkim-genkey.in):
// OWNER\tIN\tTXT\t( "tags"\n\t  "p=..."\n\t  "..." )  ; ----- DKIM key SEL for DOMAIN\n
var recordRE = regexp.MustCompile(`^(\S+)\tIN\tTXT\t\( ("[^"\n]*")((?:\n\t  "[^"\n]*")+) \)  ; (----- DKIM key \S+ for \S+)\n$`)

func parseRecord(t testing.TB, rec string) bindRecord {
	t.Helper()
	m := recordRE.FindStringSubmatch(rec)
	if m == nil {
		t.Fatalf("record does not have opendkim-genkey's layout:\n%s", rec)
	}
	r := bindRecord{owner: m[1], comment: m[4]}
	for _, q := range append([]string{m[2]}, strings.Split(strings.TrimPrefix(m[3], "\n\t  "), "\n\t  ")...) {
		if len(q) > 255+2 {
			t.Fatalf("character-string of %d bytes (TXT strings hold 255)", len(q)-2)
		}
		r.strings = append(r.strings, strings.Trim(q, `"`))
	}
	return r
}

// publicKeyOf decodes the p= of a record (RSA: SubjectPublicKeyInfo,
// Ed25519: the raw key).
func publicKeyOf(t testing.TB, r bindRecord, alg string) crypto.PublicKey {
	t.Helper()
	p, ok := strings.CutPrefix(strings.Join(r.strings[1:], ""), "p=")
	if !ok {
		t.Fatalf("second string does not start with p=: %q", r.strings[1])
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	if alg == "ed25519" {
		if len(der) != ed25519.PublicKeySize {
			t.Fatalf("Ed25519 p= has %d bytes", len(der))
		}
		return ed25519.PublicKey(der)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestTXTRecord(t *testing.T) {
	rsaK := testRSAKey(t)
	edK := testEdKey(t)
	big, _, err := GenerateKey("rsa", 4096)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, sel, domain string
		key               crypto.Signer
		opts              RecordOptions
		owner, tags       string
		strings           int
	}{
		{"rsa-2048", "mail", "example.com", rsaK, RecordOptions{}, "mail._domainkey", "v=DKIM1; k=rsa; ", 3},
		{"rsa-4096", "big", "example.com", big, RecordOptions{}, "big._domainkey", "v=DKIM1; k=rsa; ", 4},
		{"-a", "mail", "example.com", rsaK, RecordOptions{AppendDomain: true}, "mail._domainkey.example.com.", "v=DKIM1; k=rsa; ", 3},
		{"-r", "mail", "example.com", rsaK, RecordOptions{Restrict: true}, "mail._domainkey", "v=DKIM1; k=rsa; s=email; ", 3},
		{"testing", "mail", "example.com", rsaK, RecordOptions{Testing: true}, "mail._domainkey", "v=DKIM1; k=rsa; t=y; ", 3},
		{"all", "s2026", "sub.example.org", rsaK, RecordOptions{AppendDomain: true, Restrict: true, Testing: true}, "s2026._domainkey.sub.example.org.", "v=DKIM1; k=rsa; t=y; s=email; ", 3},
		{"ed25519", "ed", "example.com", edK, RecordOptions{}, "ed._domainkey", "v=DKIM1; k=ed25519; ", 2},
		{"ed25519 -a -r", "ed", "example.com", edK, RecordOptions{AppendDomain: true, Restrict: true}, "ed._domainkey.example.com.", "v=DKIM1; k=ed25519; s=email; ", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := TXTRecord(tc.sel, tc.domain, tc.key, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			r := parseRecord(t, rec)
			if r.owner != tc.owner || r.strings[0] != tc.tags || r.comment != "----- DKIM key "+tc.sel+" for "+tc.domain {
				t.Fatalf("owner %q tags %q comment %q\n%s", r.owner, r.strings[0], r.comment, rec)
			}
			if len(r.strings) != tc.strings {
				t.Fatalf("%d strings, want %d\n%s", len(r.strings), tc.strings, rec)
			}
			for i, s := range r.strings[1:] {
				if len(s) > 250 || len(s) == 0 {
					t.Fatalf("key string %d has %d characters (1..250)", i, len(s))
				}
				if i < len(r.strings)-2 && len(s) != 250 {
					t.Fatalf("key string %d has %d characters, want 250 for all but the last", i, len(s))
				}
			}
			type eq interface{ Equal(crypto.PublicKey) bool }
			if !tc.key.Public().(eq).Equal(publicKeyOf(t, r, Algorithm(tc.key))) {
				t.Fatal("p= is not the key's public key")
			}
		})
	}
	rec, _ := TXTRecord("mail", "example.com", rsaK, RecordOptions{})
	if !strings.HasPrefix(rec, "mail._domainkey\tIN\tTXT\t( \"v=DKIM1; k=rsa; \"\n\t  \"p=MIIB") {
		t.Fatalf("record starts %q", rec[:60])
	}
}

// TestTXTRecordLikeOpendkimGenkey compares the layout with the real
// opendkim-genkey when it is installed (opendkim-tools).
func TestTXTRecordLikeOpendkimGenkey(t *testing.T) {
	genkey, err := exec.LookPath("opendkim-genkey")
	if err != nil {
		testutil.Require(t, "opendkim-genkey (apt-get install opendkim-tools)")
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-d", "example.com", "-s", "mail", "-b", "2048"},
		{"-d", "example.com", "-s", "mail", "-b", "1024", "-a", "-r"},
	} {
		os.RemoveAll(filepath.Join(dir, "mail.txt"))
		os.RemoveAll(filepath.Join(dir, "mail.private"))
		if out, err := exec.Command(genkey, append(args, "-D", dir)...).CombinedOutput(); err != nil {
			t.Fatalf("opendkim-genkey: %v\n%s", err, out)
		}
		theirs, err := os.ReadFile(filepath.Join(dir, "mail.txt"))
		if err != nil {
			t.Fatal(err)
		}
		pemData, err := os.ReadFile(filepath.Join(dir, "mail.private"))
		if err != nil {
			t.Fatal(err)
		}
		key, _, err := ParseKey(pemData)
		if err != nil {
			t.Fatalf("vouch cannot read opendkim-genkey's key: %v", err)
		}
		opts := RecordOptions{AppendDomain: strings.Contains(strings.Join(args, " "), "-a"), Restrict: strings.Contains(strings.Join(args, " "), "-r")}
		ours, err := TXTRecord("mail", "example.com", key, opts)
		if err != nil {
			t.Fatal(err)
		}
		// opendkim-genkey cuts p= after 250 base64 characters (252 with
		// "p="), vouch after 248; and 2.11 writes "h=sha256; " by default.
		// The rest must be the same.
		a, b := parseRecord(t, string(theirs)), parseRecord(t, ours)
		if a.owner != b.owner || a.comment != b.comment || strings.Replace(a.strings[0], " h=sha256;", "", 1) != b.strings[0] {
			t.Fatalf("opendkim-genkey:\n%s\nvouch:\n%s", theirs, ours)
		}
		if strings.Join(a.strings[1:], "") != strings.Join(b.strings[1:], "") {
			t.Fatalf("p= differs:\nopendkim-genkey:\n%s\nvouch:\n%s", theirs, ours)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		alg  string
		bits int
		want string // algorithm, or the error
		size int
	}{
		{"ed25519", 0, "ed25519", 0},
		{"ed25519", 4096, "ed25519", 0}, // bits do not matter
		{"rsa", 1024, "rsa", 1024},
		{"rsa", 3072, "rsa", 3072},
		{"", 0, "rsa", 2048},
		{"rsa", 512, "RSA keys need at least 1024 bits", 0},
		{"dsa", 0, `unknown key type "dsa"`, 0},
		{"RSA", 0, `unknown key type "RSA"`, 0},
	}
	for _, tc := range tests {
		key, pemData, err := GenerateKey(tc.alg, tc.bits)
		if tc.size == 0 && tc.want != "ed25519" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("GenerateKey(%q, %d): %v, want %q", tc.alg, tc.bits, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("GenerateKey(%q, %d): %v", tc.alg, tc.bits, err)
		}
		if Algorithm(key) != tc.want {
			t.Errorf("GenerateKey(%q, %d): %s key", tc.alg, tc.bits, Algorithm(key))
		}
		if k, ok := key.(*rsa.PrivateKey); ok && k.N.BitLen() != tc.size {
			t.Errorf("GenerateKey(%q, %d): %d bits", tc.alg, tc.bits, k.N.BitLen())
		}
		block, rest := pem.Decode(pemData)
		if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
			t.Fatalf("not one PKCS#8 PEM block: %q", pemData)
		}
		back, _, err := ParseKey(pemData)
		if err != nil || !samePublic(back, key) {
			t.Fatalf("the PEM does not read back: %v", err)
		}
	}
}

// TestTXTRecordWithDkimpy: a record published as SELECTOR.txt says lets
// dkimpy verify what vouch signs (optional: needs python3-dkim).
func TestTXTRecordWithDkimpy(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import dkim, nacl").Run(); err != nil {
		testutil.Require(t, "/usr/bin/python3 with dkim and nacl (apt-get install python3-dkim python3-nacl)")
	}
	dir := t.TempDir()
	var keys []InlineKey
	txt := map[string]string{}
	for _, k := range []struct{ sel, alg string }{{"rsa", "rsa"}, {"ed", "ed25519"}} {
		key, pemData, err := GenerateKey(k.alg, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := TXTRecord(k.sel, "example.com", key, RecordOptions{Restrict: true})
		if err != nil {
			t.Fatal(err)
		}
		txt[k.sel+"._domainkey.example.com"] = strings.Join(parseRecord(t, rec).strings, "")
		keys = append(keys, InlineKey{Domain: "example.com", Selector: k.sel, PrivateKey: writeFile(t, dir, k.sel+".private", string(pemData), 0o600)})
	}
	s, _, err := New(Config{Keys: keys, Headers: []string{"From", "To", "Subject"}, Oversign: []string{"From"}})
	if err != nil {
		t.Fatal(err)
	}
	msg := signRaw(t, s, "From: A <a@example.com>\nTo: b@example.org\nSubject: dkimpy\n\nbody\n")
	script := `
import sys, dkim
keys = {}
for line in open(sys.argv[1]):
    name, _, txt = line.rstrip("\n").partition("\t")
    keys[name] = txt.encode()
def dnsfunc(name, timeout=5):
    return keys.get(name.decode().rstrip("."))
msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
n = sum(1 for h in d.headers if h[0].lower() == b"dkim-signature")
if n != 2:
    sys.exit("%d signatures" % n)
for i in range(n):
    if not d.verify(idx=i, dnsfunc=dnsfunc):
        sys.exit("signature %d does not verify" % i)
`
	var tsv strings.Builder
	for name, v := range txt {
		tsv.WriteString(name + "\t" + v + "\n")
	}
	keysFile := writeFile(t, dir, "keys.tsv", tsv.String(), 0o644)
	cmd := exec.Command("/usr/bin/python3", "-c", script, keysFile)
	cmd.Stdin = strings.NewReader(string(msg))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dkimpy: %v\n%s\n%s", err, out, msg)
	}
}
