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

	stdout.Reset()
	stderr.Reset()
	if code := importOpenDKIM([]string{filepath.Join(dir, "missing.conf")}, &stdout, &stderr); code != 1 || stdout.Len() != 0 {
		t.Errorf("missing file: exit %d, stdout %q", code, stdout.String())
	}
	if code := importOpenDKIM([]string{"a", "b"}, &stdout, &stderr); code != 2 {
		t.Errorf("two files: exit %d", code)
	}
}
