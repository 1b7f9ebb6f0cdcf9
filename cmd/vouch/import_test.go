package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vouch/internal/daemon"
)

func TestImportOpenDKIM(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "opendkim.conf")
	os.WriteFile(conf, []byte("Syslog yes\nSocket inet:8891@localhost\nKeyTable /etc/opendkim/KeyTable\nSigningTable refile:/etc/opendkim/SigningTable\nInternalHosts /etc/opendkim/TrustedHosts\nLDAPUseTLS yes\nBogus 1\n"), 0o644)

	var stdout, stderr bytes.Buffer
	if code := importOpenDKIM([]string{conf}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	out := filepath.Join(dir, "vouch.toml")
	os.WriteFile(out, stdout.Bytes(), 0o644)
	cfg, err := daemon.Load(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if cfg.Signing.SigningTable != "refile:/etc/opendkim/SigningTable" || cfg.Signing.InternalHostsFile != "/etc/opendkim/TrustedHosts" || len(cfg.Signing.InternalHosts) != 0 {
		t.Errorf("signing = %+v", cfg.Signing)
	}
	for _, want := range []string{"not carried over: Syslog (", "not carried over: LDAPUseTLS (", "not carried over: Bogus (", "unknown option"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
		if !strings.HasPrefix(want, "not carried over: ") {
			continue
		}
		if !strings.Contains(stdout.String(), "#   "+strings.TrimPrefix(want, "not carried over: ")) {
			t.Errorf("the TOML header lacks %q", want)
		}
	}

	// An LDAP bind password goes into a 0600 file of its own, never into
	// the printed configuration; a second import finds the same password
	// there, a different one is not overwritten.
	ldapConf := filepath.Join(dir, "ldap.conf")
	os.WriteFile(ldapConf, []byte("KeyTable ldap://ldap.example:389/?DKIMDomain,DKIMSelector,DKIMKey,?sub?(DKIMSelector=$d)\n"+
		"SigningTable ldap://ldap.example:389/?DKIMSelector?sub?(DKIMIdentity=$d)\nLDAPBindUser cn=x\nLDAPBindPassword pa55-w0rd\n"), 0o644)
	secret := filepath.Join(dir, "ldap.secret")
	for i, want := range []int{0, 0} {
		stdout.Reset()
		stderr.Reset()
		if code := importOpenDKIM([]string{"-ldap-password-file", secret, ldapConf}, &stdout, &stderr); code != want {
			t.Fatalf("LDAP import %d: exit %d\n%s", i, code, stderr.String())
		}
		if strings.Contains(stdout.String(), "pa55-w0rd") || !strings.Contains(stdout.String(), `ldap_bind_password_file = "`+secret+`"`) {
			t.Fatalf("LDAP import %d: the TOML holds the password or lacks the file:\n%s", i, stdout.String())
		}
		fi, err := os.Stat(secret)
		if b, _ := os.ReadFile(secret); err != nil || fi.Mode().Perm() != 0o600 || string(b) != "pa55-w0rd\n" {
			t.Fatalf("LDAP import %d: password file %v %v %q", i, err, fi.Mode(), b)
		}
	}
	os.WriteFile(secret, []byte("other\n"), 0o600)
	if code := importOpenDKIM([]string{"-ldap-password-file", secret, ldapConf}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "holds something else") {
		t.Fatalf("a different password file was not refused: exit %d\n%s", code, stderr.String())
	}
	if b, _ := os.ReadFile(secret); string(b) != "other\n" {
		t.Fatalf("the other password file was changed: %q", b)
	}

	stdout.Reset()
	stderr.Reset()
	if code := importOpenDKIM([]string{filepath.Join(dir, "missing.conf")}, &stdout, &stderr); code != 1 || stdout.Len() != 0 {
		t.Errorf("missing file: exit %d, stdout %q", code, stdout.String())
	}
	if code := importOpenDKIM([]string{"a", "b"}, &stdout, &stderr); code != 2 {
		t.Errorf("two files: exit %d", code)
	}
}
