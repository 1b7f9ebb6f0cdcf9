package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vouch/internal/daemon"
	"vouch/internal/dnstest"
	"vouch/signer"
)

// keysNow is the clock of the golden tests.
var keysNow = time.Date(2026, 7, 10, 12, 0, 0, 0, time.UTC)

// TestKeysGolden runs `vouch keys` (text and JSON) against in-process DNS
// with key files of fixed ages and rotation states made by the daemon's
// own checks, and compares with testdata/keys/NAME[-json].golden
// (go test ./cmd/vouch -run KeysGolden -update rewrites them).
func TestKeysGolden(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		name      string
		key       string        // test key of the [[signing.key]]
		age       time.Duration // of its file
		next      string        // test key of the next key, "" for none
		published bool          // the next key's record is in the zone
		checks    []time.Duration
		keyTable  bool // a KeyTable row instead of a [[signing.key]]
		replaced  bool // after the checks, another key's record replaces the next key's
		percent   bool // the KeyTable path has a %: listed with -d only
	}{
		{name: "fresh", key: "mail", age: 3 * day},
		{name: "old", key: "mail", age: 200 * day},
		{name: "weak", key: "old", age: 30 * day},
		{name: "next-unpublished", key: "mail", age: 170 * day, next: "other"},
		{name: "next-pending", key: "mail", age: 170 * day, next: "other", published: true, checks: []time.Duration{-10 * time.Hour}},
		{name: "next-switched", key: "mail", age: 172 * day, next: "other", published: true, checks: []time.Duration{-50 * time.Hour, -2 * time.Hour}},
		{name: "next-switched-broken", key: "mail", age: 172 * day, next: "other", published: true, checks: []time.Duration{-60 * time.Hour, -10 * time.Hour}, replaced: true},
		{name: "keytable", key: "mail", age: 400 * day, keyTable: true},
		{name: "keytable-percent", key: "ed", age: 10 * day, keyTable: true, percent: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := dnstest.New(t, dkimTXT(t, "cur", "example.test", tc.key))
			keyPath, _ := checkKeyFile(t, dir, tc.key)
			if err := os.Chtimes(keyPath, keysNow, keysNow.Add(-tc.age)); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "[dns]\nservers = [%q]\ntimeout = \"300ms\"\nattempts = 1\n\n", srv.Addr)
			fmt.Fprintf(&b, "[rotation]\nstate_file = %q\n\n", filepath.Join(dir, "rotation.json"))
			if tc.keyTable {
				kt := filepath.Join(dir, "KeyTable")
				row := "cur example.test:cur:" + keyPath + "\n"
				if tc.percent {
					os.Rename(keyPath, filepath.Join(dir, "example.test.pem"))
					keyPath = filepath.Join(dir, "example.test.pem")
					row = "cur %:cur:" + filepath.Join(dir, "%.pem") + "\n"
				}
				os.WriteFile(kt, []byte(row), 0o644)
				st := filepath.Join(dir, "SigningTable")
				os.WriteFile(st, []byte("example.test cur\n"), 0o644)
				fmt.Fprintf(&b, "[signing]\nkey_table = %q\nsigning_table = %q\n", kt, st)
			} else {
				fmt.Fprintf(&b, "[[signing.key]]\ndomain = \"example.test\"\nselector = \"cur\"\nprivate_key = %q\n", keyPath)
			}
			if tc.next != "" {
				nextPath := filepath.Join(dir, "next.pem")
				p, _ := checkKeyFile(t, dir, tc.next)
				os.Rename(p, nextPath)
				fmt.Fprintf(&b, "next_selector = \"next\"\nnext_private_key = %q\n", nextPath)
				if tc.published {
					srv.MustAdd(dkimTXT(t, "next", "example.test", tc.next))
				}
			}
			cfgPath := filepath.Join(dir, "vouch.toml")
			os.WriteFile(cfgPath, []byte(b.String()), 0o644)
			runRotationChecks(t, cfgPath, tc.checks)
			if tc.replaced {
				srv.Remove("next._domainkey.example.test")
				srv.MustAdd(dkimTXT(t, "next", "example.test", "ed"))
			}
			for _, format := range []string{"", "-json"} {
				args := []string{"-config", cfgPath}
				if tc.percent {
					args = append(args, "-d", "example.test")
				}
				if format != "" {
					args = append(args, format)
				}
				var out, errOut bytes.Buffer
				if exit := runKeys(args, &out, &errOut, keysNow); exit != 0 {
					t.Fatalf("exit %d: %s", exit, errOut.String())
				}
				got := strings.ReplaceAll(out.String(), dir, "DIR")
				if format != "" {
					var v struct{ Keys []keyReport }
					if err := json.Unmarshal(out.Bytes(), &v); err != nil || len(v.Keys) != 1 {
						t.Errorf("JSON: %v %+v", err, v)
					}
				}
				golden := filepath.Join("testdata/keys", tc.name+format+".golden")
				if *updateGolden {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if got != string(want) {
					t.Errorf("output differs from %s (-update rewrites it):\n--- got\n%s\n--- want\n%s", golden, got, want)
				}
			}
		})
	}
}

// runRotationChecks runs the daemon's rotation checks for the config at
// keysNow+each offset, so that the state file is what the daemon writes.
func runRotationChecks(t *testing.T, cfgPath string, at []time.Duration) {
	t.Helper()
	if len(at) == 0 {
		return
	}
	cfg, err := daemon.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := configResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sg, _, err := signer.New(daemon.SignerConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	rot := sg.Rotation()
	rot.Lookup = func(ctx context.Context, name string) ([]string, error) {
		txts, _, err := res.TXTFresh(ctx, name)
		return txts, err
	}
	for _, d := range at {
		rot.Now = func() time.Time { return keysNow.Add(d) }
		rot.Check(context.Background())
	}
}

func TestKeysUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		exit int
	}{
		{[]string{"-h"}, 0},
		{[]string{"extra"}, 2},
		{[]string{"-bogus"}, 2},
		{[]string{"-config", filepath.Join(t.TempDir(), "missing.toml")}, 1},
	} {
		if got := runKeys(tc.args, &bytes.Buffer{}, &bytes.Buffer{}, keysNow); got != tc.exit {
			t.Errorf("%q: exit %d, want %d", tc.args, got, tc.exit)
		}
	}
}
