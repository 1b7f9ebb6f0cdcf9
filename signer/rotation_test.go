package signer

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"vouch/internal/dnstest"
	"vouch/internal/resolver"
)

// rotationFixture is a signer whose [[signing.key]] entries name next
// keys, an in-process DNS server for their records, an injected clock and
// recorded events and logs.
type rotationFixture struct {
	t      *testing.T
	dns    *dnstest.Server
	res    *resolver.Resolver
	cfg    Config
	keys   map[string]crypto.Signer // by selector
	s      *Signer
	now    time.Time
	events []string
	logs   bytes.Buffer
	mu     sync.Mutex
}

const rotDomain = "example.test"

// newRotationFixture: one [[signing.key]] per pair "alg:selector:next".
func newRotationFixture(t *testing.T, pairs ...string) *rotationFixture {
	f := &rotationFixture{t: t, dns: dnstest.New(t), keys: map[string]crypto.Signer{}, now: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
	var err error
	f.res, err = resolver.New(resolver.Config{Servers: []string{f.dns.Addr}, Timeout: 300 * time.Millisecond, Attempts: 1, CacheSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f.cfg = Config{Headers: []string{"From"}, RequireSafeKeys: true, Rotation: RotationConfig{
		CheckInterval: time.Hour, PublishDelay: 48 * time.Hour, AutoSwitch: true, StateFile: filepath.Join(dir, "state", "rotation.json"),
	}}
	for _, p := range pairs {
		alg, sels, _ := strings.Cut(p, ":")
		cur, next, _ := strings.Cut(sels, ":")
		ik := InlineKey{Domain: rotDomain, Selector: cur, PrivateKey: f.keyFile(dir, alg, cur), NextSelector: next}
		ik.NextPrivateKey = f.keyFile(dir, alg, next)
		f.cfg.Keys = append(f.cfg.Keys, ik)
		f.publish(cur, cur) // the current key is published, as in real life
	}
	f.restart()
	return f
}

func (f *rotationFixture) keyFile(dir, alg, selector string) string {
	k, pemData, err := GenerateKey(alg, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	path := filepath.Join(dir, selector+".private")
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.keys[selector] = k
	return path
}

// restart builds the signer again from the same configuration and state
// file, as a restart or reload of the daemon does.
func (f *rotationFixture) restart() {
	s, _, err := New(f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	rot := s.Rotation()
	rot.Lookup = func(ctx context.Context, name string) ([]string, error) {
		txts, _, err := f.res.TXTFresh(ctx, name)
		return txts, err
	}
	rot.Log = slog.New(slog.NewTextHandler(&f.logs, nil))
	rot.Events = f
	rot.Now = func() time.Time { return f.now }
	f.s = s
}

func (f *rotationFixture) KeyRotation(domain, event string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, domain+" "+event)
}

// publish puts the public half of the key named keyName at selector.
func (f *rotationFixture) publish(selector, keyName string, extraTags ...string) {
	f.t.Helper()
	name := selector + "._domainkey." + rotDomain
	f.dns.Remove(name)
	k := f.keys[keyName]
	p, err := PublicKeyRecord(k)
	if err != nil {
		f.t.Fatal(err)
	}
	rec := "v=DKIM1; k=" + Algorithm(k) + "; " + strings.Join(extraTags, "") + "p=" + p
	var parts []string
	for len(rec) > 0 {
		n := min(len(rec), 250)
		parts = append(parts, fmt.Sprintf("%q", rec[:n]))
		rec = rec[n:]
	}
	f.dns.MustAdd(name + ". 300 IN TXT " + strings.Join(parts, " "))
}

// check advances the clock by d and runs one round of checks.
func (f *rotationFixture) check(d time.Duration) {
	f.now = f.now.Add(d)
	f.s.Rotation().Check(context.Background())
}

// signing is the selectors a message from the domain is signed with.
func (f *rotationFixture) signing() string {
	f.t.Helper()
	reqs, err := f.s.Lookup("user", rotDomain)
	if err != nil {
		f.t.Fatal(err)
	}
	var sels []string
	for _, r := range reqs {
		sels = append(sels, r.Key.Selector)
	}
	return strings.Join(sels, " ")
}

func (f *rotationFixture) expect(want string, wantEvents ...string) {
	f.t.Helper()
	if got := f.signing(); got != want {
		f.t.Errorf("at %s: signed with %q, want %q\nlog:\n%s", f.now.Format(time.RFC3339), got, want, f.logs.String())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.events, wantEvents) {
		f.t.Errorf("events %q, want %q", f.events, wantEvents)
	}
}

func TestRotation(t *testing.T) {
	cases := []struct {
		name  string
		pairs []string
		run   func(f *rotationFixture)
	}{
		{"next record absent: current key signs", []string{"rsa:cur:next"}, func(f *rotationFixture) {
			for range 100 {
				f.check(time.Hour)
			}
			f.expect("cur")
		}},
		{"published and matching for less than the delay: current, then next after it", []string{"rsa:cur:next"}, func(f *rotationFixture) {
			f.publish("next", "next")
			f.check(0)
			f.check(48*time.Hour - time.Second)
			f.expect("cur")
			f.check(time.Second)
			f.expect("next", rotDomain+" switched")
			if n := strings.Count(f.logs.String(), "switched to the next key"); n != 1 {
				t.Errorf("switch logged %d times, want once", n)
			}
			f.check(time.Hour)
			f.check(time.Hour)
			f.expect("next", rotDomain+" switched")
			if n := strings.Count(f.logs.String(), "switched to the next key"); n != 1 {
				t.Errorf("switch logged %d times after more checks, want once", n)
			}
		}},
		{"record changed mid-wait resets the clock", []string{"ed25519:cur:next"}, func(f *rotationFixture) {
			f.publish("next", "next")
			f.check(0)
			f.publish("next", "cur") // another key at the next selector
			f.check(24 * time.Hour)
			f.publish("next", "next")
			f.check(time.Hour) // the wait starts again here
			f.check(47 * time.Hour)
			f.expect("cur")
			f.publish("next", "next", "t=y; ") // same key, record changed
			f.check(time.Hour)
			f.check(47 * time.Hour)
			f.expect("cur")
			f.check(time.Hour)
			f.expect("next", rotDomain+" switched")
		}},
		{"record removed mid-wait resets the clock", []string{"ed25519:cur:next"}, func(f *rotationFixture) {
			f.publish("next", "next")
			f.check(0)
			f.dns.Remove("next._domainkey." + rotDomain)
			f.check(24 * time.Hour)
			f.publish("next", "next")
			f.check(25 * time.Hour)
			f.expect("cur")
			f.check(47 * time.Hour)
			f.expect("cur")
			f.check(time.Hour)
			f.expect("next", rotDomain+" switched")
		}},
		{"a DNS failure mid-wait neither resets nor switches", []string{"ed25519:cur:next"}, func(f *rotationFixture) {
			f.publish("next", "next")
			f.check(0)
			f.dns.SetFault("next._domainkey."+rotDomain, dnstest.ServFail)
			f.check(48 * time.Hour)
			f.expect("cur")
			f.dns.SetFault("next._domainkey."+rotDomain, dnstest.None)
			f.check(time.Hour)
			f.expect("next", rotDomain+" switched")
		}},
		{"a mismatching record never switches", []string{"ed25519:cur:next"}, func(f *rotationFixture) {
			f.publish("next", "cur")
			for range 200 {
				f.check(time.Hour)
			}
			f.expect("cur")
		}},
		{"a record of the wrong algorithm never switches", []string{"ed25519:cur:next"}, func(f *rotationFixture) {
			f.keyFile(f.t.TempDir(), "rsa", "rsakey")
			f.publish("next", "rsakey")
			f.check(0)
			f.check(100 * time.Hour)
			f.expect("cur")
		}},
		{"a revoked record never switches", []string{"rsa:cur:next"}, func(f *rotationFixture) {
			f.dns.MustAdd(`next._domainkey.` + rotDomain + `. 300 IN TXT "v=DKIM1; k=rsa; p="`)
			f.check(0)
			f.check(100 * time.Hour)
			f.expect("cur")
		}},
		{"restart after the switch: still next; a record that then stops matching is an error, not a way back", []string{"rsa:cur:next"}, func(f *rotationFixture) {
			f.publish("next", "next")
			f.check(0)
			f.check(48 * time.Hour)
			f.restart()
			f.expect("next", rotDomain+" switched")
			f.dns.Remove("next._domainkey." + rotDomain)
			f.check(time.Hour)
			f.restart()
			f.check(time.Hour)
			f.expect("next", rotDomain+" switched", rotDomain+" error", rotDomain+" error")
			if !strings.Contains(f.logs.String(), "level=ERROR") {
				t.Errorf("no error logged:\n%s", f.logs.String())
			}
			// The state file lost the switch (a reload's old runtime wrote
			// over it, or it was restored from a backup): the next check
			// writes it again.
			os.Remove(f.cfg.Rotation.StateFile)
			f.check(time.Hour)
			f.restart()
			f.expect("next", rotDomain+" switched", rotDomain+" error", rotDomain+" error", rotDomain+" error")
		}},
		{"restart mid-wait keeps the clock", []string{"ed25519:cur:next"}, func(f *rotationFixture) {
			f.publish("next", "next")
			f.check(0)
			f.check(24 * time.Hour)
			f.restart()
			f.check(24 * time.Hour)
			f.expect("next", rotDomain+" switched")
		}},
		{"a domain with RSA and Ed25519 keys rotates each on its own", []string{"rsa:rsa1:rsa2", "ed25519:ed1:ed2"}, func(f *rotationFixture) {
			f.publish("ed2", "ed2")
			f.check(0)
			f.check(48 * time.Hour)
			f.expect("rsa1 ed2", rotDomain+" switched")
			f.publish("rsa2", "rsa2")
			f.check(time.Hour)
			f.check(48 * time.Hour)
			f.expect("rsa2 ed2", rotDomain+" switched", rotDomain+" switched")
		}},
		{"auto_switch off: ready is logged once, never switched", []string{"ed25519:cur:next"}, func(f *rotationFixture) {
			f.cfg.Rotation.AutoSwitch = false
			f.restart()
			f.publish("next", "next")
			f.check(0)
			for range 10 {
				f.check(48 * time.Hour)
			}
			f.expect("cur")
			if n := strings.Count(f.logs.String(), "next key is ready"); n != 1 {
				t.Errorf("ready logged %d times, want once:\n%s", n, f.logs.String())
			}
		}},
		{"a state file that cannot be written: no switch a restart would forget", []string{"ed25519:cur:next"}, func(f *rotationFixture) {
			// Readable as absent, but nothing can be created there, not even by root.
			f.cfg.Rotation.StateFile = "/proc/vouch-rotation-test/rotation.json"
			f.restart()
			f.publish("next", "next")
			f.check(0)
			f.check(100 * time.Hour)
			f.expect("cur")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(newRotationFixture(t, tc.pairs...))
		})
	}
}

// TestRotationStateCorrupt: a state file that does not parse stops the
// start (it may say a key has switched) and names the file.
func TestRotationStateCorrupt(t *testing.T) {
	f := newRotationFixture(t, "rsa:cur:next")
	os.MkdirAll(filepath.Dir(f.cfg.Rotation.StateFile), 0o750)
	if err := os.WriteFile(f.cfg.Rotation.StateFile, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := New(f.cfg)
	if err == nil || !strings.Contains(err.Error(), f.cfg.Rotation.StateFile) {
		t.Fatalf("err = %v, want one naming the state file", err)
	}
}
