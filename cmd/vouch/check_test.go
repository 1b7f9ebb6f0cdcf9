package main

import (
	"bytes"
	"crypto"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vouch/internal/dnstest"
	"vouch/internal/domaincheck"
	"vouch/signer"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of cmd/vouch/testdata/check")

// checkKeyFile copies a test key from testdata into dir with mode 0600
// (git does not keep modes; signing.require_safe_keys wants 0600) and
// returns its path and the loaded key.
func checkKeyFile(t *testing.T, dir, name string) (string, crypto.Signer) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata/check/keys", name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	k, _, err := signer.ParseKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return path, k
}

// dkimTXT is the zone line publishing the test key name at selector.domain.
func dkimTXT(t *testing.T, selector, domain, name string) string {
	t.Helper()
	_, k := checkKeyFile(t, t.TempDir(), name)
	rec, err := domaincheck.RecordText(k)
	if err != nil {
		t.Fatal(err)
	}
	return selector + "._domainkey." + domain + ". 300 IN TXT " + strings.Trim(rec, "() ")
}

type testKeyEntry struct{ domain, selector, name string }

// writeCheckConfig writes a vouch config using srv for DNS and the given
// test keys as [[signing.key]] entries.
func writeCheckConfig(t *testing.T, srv *dnstest.Server, keys ...testKeyEntry) string {
	t.Helper()
	return writeCheckConfigAddr(t, srv.Addr, keys...)
}

// writeCheckConfigAddr is writeCheckConfig with any DNS server address.
func writeCheckConfigAddr(t *testing.T, dnsAddr string, keys ...testKeyEntry) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "[dns]\nservers = [%q]\ntimeout = \"300ms\"\nattempts = 1\n\n", dnsAddr)
	for _, k := range keys {
		path, _ := checkKeyFile(t, dir, k.name)
		fmt.Fprintf(&b, "[[signing.key]]\ndomain = %q\nselector = %q\nprivate_key = %q\n\n", k.domain, k.selector, path)
	}
	path := filepath.Join(dir, "vouch.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheckGolden runs `vouch check` in-process against in-process DNS
// zones, good and broken, and compares the report with
// testdata/check/NAME.golden (go test ./cmd/vouch -run CheckGolden -update
// rewrites them).
func TestCheckGolden(t *testing.T) {
	cases := []struct {
		name    string
		records func(t *testing.T) []string
		faults  map[string]dnstest.Fault
		keys    []testKeyEntry
		args    []string
		exit    int
	}{
		{
			name: "good",
			records: func(t *testing.T) []string {
				return []string{
					`example.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 include:_spf.example.test -all"`,
					`_spf.example.test. 300 IN TXT "v=spf1 a:out.example.test -all"`,
					"out.example.test. 300 IN A 192.0.2.2",
					dkimTXT(t, "mail", "example.test", "mail"),
					dkimTXT(t, "ed", "example.test", "ed"),
					`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.test"`,
					"example.test. 300 IN MX 10 mail.example.test.",
					"mail.example.test. 300 IN A 192.0.2.1",
					"1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.test.",
				}
			},
			keys: []testKeyEntry{{"example.test", "mail", "mail"}, {"example.test", "ed", "ed"}},
			args: []string{"-ip", "192.0.2.1", "example.test"},
			exit: 0,
		},
		{
			name: "missing",
			records: func(t *testing.T) []string {
				return []string{"bare.test. 300 IN A 192.0.2.5"}
			},
			keys: []testKeyEntry{{"bare.test", "mail", "mail"}},
			args: []string{"-ip", "192.0.2.5", "bare.test"},
			exit: 2,
		},
		{
			name: "broken",
			records: func(t *testing.T) []string {
				return []string{
					`broken.test. 300 IN TXT "v=spf1 include:a.broken.test include:b.broken.test ~all"`,
					`a.broken.test. 300 IN TXT "v=spf1 a mx ptr exists:x.broken.test include:c.broken.test -all"`,
					`b.broken.test. 300 IN TXT "v=spf1 a -all"`,
					`c.broken.test. 300 IN TXT "v=spf1 a mx a:y.broken.test mx:z.broken.test/24 -all"`,
					dkimTXT(t, "mail", "broken.test", "other"),
					dkimTXT(t, "old", "broken.test", "old"),
					`gone._domainkey.broken.test. 300 IN TXT "v=DKIM1; k=rsa; p="`,
					`_dmarc.broken.test. 300 IN TXT "v=DMARC1; p=none; pct=50"`,
					"broken.test. 300 IN MX 0 .",
					"9.2.0.192.in-addr.arpa. 300 IN PTR host.isp.example.",
					"mx.broken.test. 300 IN A 192.0.2.10",
				}
			},
			keys: []testKeyEntry{{"broken.test", "mail", "mail"}, {"broken.test", "old", "old"}, {"broken.test", "gone", "mail"}},
			args: []string{"-ip", "192.0.2.9", "-helo", "mx.broken.test", "broken.test"},
			exit: 2,
		},
		{
			name: "warnings",
			records: func(t *testing.T) []string {
				return []string{
					`warn.test. 300 IN TXT "v=spf1 mx ~all"`,
					"warn.test. 300 IN MX 10 mx.warn.test.",
					"warn.test. 300 IN MX 20 mx2.warn.test.",
					"mx.warn.test. 300 IN A 192.0.2.20",
					dkimTXT(t, "s1", "warn.test", "old"),
					`_dmarc.warn.test. 300 IN TXT "v=DMARC1; p=quarantine; adkim=x; rua=mailto:r@reports.example.net"`,
				}
			},
			keys: []testKeyEntry{{"warn.test", "s1", "old"}},
			args: []string{"warn.test"},
			exit: 1,
		},
		{
			name: "subdomain",
			records: func(t *testing.T) []string {
				return []string{
					`news.example.test. 300 IN TXT "v=spf1 redirect=example.test"`,
					`example.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
					dkimTXT(t, "list", "news.example.test", "ed"),
					`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@example.test; ruf=mailto:f@example.test"`,
					"news.example.test. 300 IN MX 10 mail.example.test.",
					"mail.example.test. 300 IN A 192.0.2.1",
					"1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.test.",
				}
			},
			keys: []testKeyEntry{{"example.test", "mail", "mail"}},
			args: []string{"-selector", "list", "news.example.test", "-ip", "192.0.2.1", "-helo", "mail.example.test"},
			exit: 0,
		},
		{
			name: "dnsfailure",
			records: func(t *testing.T) []string {
				return []string{`temp.test. 300 IN TXT "v=spf1 -all"`, `_dmarc.temp.test. 300 IN TXT "v=DMARC1; p=reject"`}
			},
			faults: map[string]dnstest.Fault{"temp.test": dnstest.ServFail, "_dmarc.temp.test": dnstest.Drop, "mail._domainkey.temp.test": dnstest.ServFail},
			keys:   []testKeyEntry{{"temp.test", "mail", "mail"}},
			args:   []string{"temp.test"},
			exit:   1,
		},
		{
			name: "good-json",
			records: func(t *testing.T) []string {
				return []string{
					`example.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
					dkimTXT(t, "mail", "example.test", "mail"),
					`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.test"`,
					"example.test. 300 IN MX 10 mail.example.test.",
					"mail.example.test. 300 IN A 192.0.2.1",
					"1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.test.",
				}
			},
			keys: []testKeyEntry{{"example.test", "mail", "mail"}},
			args: []string{"-json", "-ip", "192.0.2.1", "example.test"},
			exit: 0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnstest.New(t, tc.records(t)...)
			for name, f := range tc.faults {
				srv.SetFault(name, f)
			}
			cfg := writeCheckConfig(t, srv, tc.keys...)
			var out bytes.Buffer
			exit := runCheck(append([]string{"-config", cfg}, tc.args...), &out, io.Discard)
			golden := filepath.Join("testdata/check", tc.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out.String() != string(want) {
				t.Errorf("output differs from %s (-update rewrites it):\n--- got\n%s\n--- want\n%s", golden, out.String(), want)
			}
			if exit != tc.exit {
				t.Errorf("exit %d, want %d", exit, tc.exit)
			}
			if strings.HasSuffix(tc.name, "json") {
				var rep domaincheck.Report
				if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Exit != exit || len(rep.Items) == 0 {
					t.Errorf("JSON: %v %+v", err, rep)
				}
			}
		})
	}
}

// TestCheckUnreachableResolver: when no DNS server answers, vouch check
// says so once and exits 2 (it used to print a warning per lookup and
// exit 1, as if the domain had flaky DNS).
func TestCheckUnreachableResolver(t *testing.T) {
	// Nothing listens: a port that was just free.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close()
	// Something listens and never answers.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	for name, addr := range map[string]string{"nothing listens": closed, "packets dropped": silent.LocalAddr().String()} {
		t.Run(name, func(t *testing.T) {
			cfg := writeCheckConfigAddr(t, addr, testKeyEntry{"example.test", "mail", "mail"})
			var out bytes.Buffer
			exit := runCheck([]string{"-config", cfg, "-ip", "192.0.2.1", "example.test"}, &out, io.Discard)
			got := out.String()
			if exit != 2 || strings.Count(got, "no DNS server answers ("+addr) != 1 || strings.Count(got, "✗") != 1 ||
				strings.Contains(got, "could not look it up") || !strings.HasSuffix(got, "result: 1 failure, 0 warnings\n") {
				t.Fatalf("exit %d, want 2 and one failure:\n%s", exit, got)
			}
		})
	}
}

// TestCheckHelp: -h says what the command does, its flags, exit codes and
// an example, and exits 0.
func TestCheckHelp(t *testing.T) {
	var stdout bytes.Buffer
	if exit := runCheck([]string{"-h"}, &stdout, io.Discard); exit != 0 {
		t.Fatalf("-h: exit %d", exit)
	}
	for _, want := range []string{"usage: vouch check", "Checks the DNS of a sending domain", "Exit codes:\n  0 all good\n  1 warnings\n  2 failures", "Example:\n  vouch check -ip", "-selector", "-json"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"a.test", "b.test"}, {"-ip", "nope", "a.test"}, {"-bogus", "a.test"}} {
		if got := runCheck(args, &bytes.Buffer{}, io.Discard); got != 3 {
			t.Errorf("%q: exit %d, want 3", args, got)
		}
	}
}
