package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vouch/internal/dnstest"
)

// TestTestkeyExitCodes: one key given with -d -s -k, every outcome and
// its opendkim-testkey exit status.
func TestTestkeyExitCodes(t *testing.T) {
	srv := dnstest.New(t,
		dkimTXT(t, "mail", "example.test", "mail"),
		dkimTXT(t, "wrong", "example.test", "other"),
		dkimTXT(t, "ed", "example.test", "ed"),
		dkimTXT(t, "old", "example.test", "old"),
		`revoked._domainkey.example.test. 300 IN TXT "v=DKIM1; k=rsa; p="`,
		`garbage._domainkey.example.test. 300 IN TXT "v=DKIM1; k=rsa; p=bm90IGEga2V5"`,
		`badtag._domainkey.example.test. 300 IN TXT "k=rsa; v=DKIM1; p=AAAA"`,
		`sha1._domainkey.example.test. 300 IN TXT "v=DKIM1; h=sha1; p=AAAA"`,
		`two._domainkey.example.test. 300 IN TXT "v=DKIM1; p=AAAA"`,
		`two._domainkey.example.test. 300 IN TXT "v=DKIM1; p=BBBB"`,
		`servfail._domainkey.example.test. 300 IN TXT "v=DKIM1; p=AAAA"`,
		`timeout._domainkey.example.test. 300 IN TXT "v=DKIM1; p=AAAA"`,
		`_domainkey.example.test. 300 IN TXT "o=~"`,
	)
	srv.SetFault("servfail._domainkey.example.test", dnstest.ServFail)
	srv.SetFault("timeout._domainkey.example.test", dnstest.Drop)
	cfg := writeCheckConfig(t, srv)
	dir := t.TempDir()
	mail, _ := checkKeyFile(t, dir, "mail")
	ed, _ := checkKeyFile(t, dir, "ed")
	old, _ := checkKeyFile(t, dir, "old")

	cases := []struct {
		selector, key string
		exit          int
		out           string
	}{
		{"mail", mail, 0, "key OK (rsa 2048 bits)"},
		{"ed", ed, 0, "key OK (ed25519)"},
		{"old", old, 0, "key OK (rsa 1024 bits); warning: RSA key of 1024 bits: 2048 are recommended"},
		{"wrong", mail, 65, "not the public half of the local private key"},
		{"ed", mail, 65, "not the public half"},
		{"revoked", mail, 65, "revoked"},
		{"garbage", mail, 65, "not an RSA public key"},
		{"badtag", mail, 65, "v= must come first"},
		{"sha1", mail, 65, "does not allow sha256"},
		{"two", mail, 65, "2 TXT records"},
		{"missing", mail, 69, "no key record published (NXDOMAIN)"},
		{"servfail", mail, 75, "DNS failure"},
		{"timeout", mail, 75, "DNS failure"},
		{"mail", filepath.Join(dir, "nonexistent.pem"), 66, ""},
	}
	for _, tc := range cases {
		t.Run(tc.selector+"/"+filepath.Base(tc.key), func(t *testing.T) {
			var out, errOut bytes.Buffer
			exit := runTestkey([]string{"-config", cfg, "-d", "example.test", "-s", tc.selector, "-k", tc.key}, &out, &errOut)
			if exit != tc.exit {
				t.Errorf("exit %d, want %d\n%s%s", exit, tc.exit, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tc.out) || tc.out != "" && !strings.HasPrefix(out.String(), tc.selector+"._domainkey.example.test ("+tc.key+"): ") {
				t.Errorf("output %q, want %q", out.String(), tc.out)
			}
		})
	}
}

// TestTestkeyConfig: without -d -s -k every configured key is tested, one
// line each, and the worst status is the exit status.
func TestTestkeyConfig(t *testing.T) {
	srv := dnstest.New(t,
		dkimTXT(t, "mail", "example.test", "mail"),
		dkimTXT(t, "ed", "example.test", "ed"),
		dkimTXT(t, "mail", "other.test", "other"),
	)
	cases := []struct {
		name string
		keys []testKeyEntry
		exit int
		out  string
	}{
		{"all good", []testKeyEntry{{"example.test", "mail", "mail"}, {"example.test", "ed", "ed"}},
			0, "mail._domainkey.example.test (signing.key[0]): key OK (rsa 2048 bits)\ned._domainkey.example.test (signing.key[1]): key OK (ed25519)\n"},
		{"one missing", []testKeyEntry{{"example.test", "mail", "mail"}, {"missing.test", "mail", "mail"}},
			69, "mail._domainkey.example.test (signing.key[0]): key OK (rsa 2048 bits)\nmail._domainkey.missing.test (signing.key[1]): no key record published (NXDOMAIN)\n"},
		{"mismatch beats missing", []testKeyEntry{{"missing.test", "mail", "mail"}, {"other.test", "mail", "mail"}},
			65, "mail._domainkey.missing.test (signing.key[0]): no key record published (NXDOMAIN)\nmail._domainkey.other.test (signing.key[1]): the published key is not the public half of the local private key: signatures will fail\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeCheckConfig(t, srv, tc.keys...)
			var out, errOut bytes.Buffer
			exit := runTestkey([]string{"-config", cfg}, &out, &errOut)
			if exit != tc.exit || out.String() != tc.out {
				t.Errorf("exit %d, want %d; output:\n%s\nwant:\n%s\nstderr: %s", exit, tc.exit, out.String(), tc.out, errOut.String())
			}
		})
	}

	// No keys at all, and usage errors.
	cfg := writeCheckConfig(t, srv)
	if exit := runTestkey([]string{"-config", cfg}, &bytes.Buffer{}, &bytes.Buffer{}); exit != 64 {
		t.Errorf("no keys: exit %d", exit)
	}
	for _, args := range [][]string{{"-d", "example.test"}, {"-d", "example.test", "-s", "mail"}, {"extra"}, {"-bogus"}} {
		if exit := runTestkey(append([]string{"-config", cfg}, args...), &bytes.Buffer{}, &bytes.Buffer{}); exit != 64 {
			t.Errorf("%q: exit %d, want 64", args, exit)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("nonsense = 1\n"), 0o644)
	if exit := runTestkey([]string{"-config", bad}, &bytes.Buffer{}, &bytes.Buffer{}); exit != 64 {
		t.Errorf("bad config: exit %d", exit)
	}
}
