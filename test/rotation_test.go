package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKeyRotationBehindPostfix: a domain with an RSA and an Ed25519 key
// rotates both under a real Postfix. Mail is signed with the current
// selectors until the next keys' records (made by `vouch genkey -next`)
// have been published for publish_delay, then with the next selectors,
// with no restart; a restart does not go back. Every message is verified
// by go-msgauth and dkimpy against the zone as it is at that moment.
func TestKeyRotationBehindPostfix(t *testing.T) {
	requirePostfix(t)
	dir := t.TempDir()
	z := newZone(t)
	rsaKey := z.genkey(t, dir, "example.test", "cur", "rsa")
	edKey := z.genkey(t, dir, "example.test", "cur-ed", "ed25519")
	settings := fmt.Sprintf(`
[dns]
servers = [%q]
timeout = "2s"
[screen]
enabled = false
[rotation]
check_interval = "200ms"
publish_delay = "5s"
state_file = %q
`, z.Addr, filepath.Join(dir, "state", "rotation.json"))
	keys := fmt.Sprintf(`
[[signing.key]]
domain = "example.test"
selector = "cur"
private_key = %q
[[signing.key]]
domain = "example.test"
selector = "cur-ed"
private_key = %q
`, rsaKey, edKey)

	// The next keys, as an admin makes them: genkey -next prints the two
	// lines for each [[signing.key]].
	cfgPath := filepath.Join(dir, "genkey.toml")
	write(t, cfgPath, settings+keys)
	next := map[string][2]string{} // alg → selector, key file
	for _, alg := range []string{"rsa", "ed25519"} {
		out, err := exec.Command(vouchBin, "genkey", "-next", "-d", "example.test", "-t", alg, "-config", cfgPath).CombinedOutput()
		if err != nil {
			t.Fatalf("genkey -next: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`next_selector = "([^"]+)"\n\s*next_private_key = "([^"]+)"`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("genkey -next printed no config lines:\n%s", out)
		}
		next[alg] = [2]string{m[1], m[2]}
	}
	keys = strings.Replace(keys, fmt.Sprintf("private_key = %q\n", rsaKey), fmt.Sprintf("private_key = %q\nnext_selector = %q\nnext_private_key = %q\n", rsaKey, next["rsa"][0], next["rsa"][1]), 1)
	keys = strings.Replace(keys, fmt.Sprintf("private_key = %q\n", edKey), fmt.Sprintf("private_key = %q\nnext_selector = %q\nnext_private_key = %q\n", edKey, next["ed25519"][0], next["ed25519"][1]), 1)

	v := startVouch(t, dir, settings+keys)
	smtpPort := freePort(t)
	pf := startPostfix(t, []listener{{smtpPort, v.milter()}}, v.milter(), nil)
	addr := fmt.Sprintf("127.0.0.1:%d", smtpPort)

	// send delivers a message and returns the selectors of its signatures,
	// verified against the zone as it is now.
	n := 0
	send := func() []string {
		t.Helper()
		n++
		marker := fmt.Sprintf("rotation-%d", n)
		if s := deliver(t, addr, nil, "alice@example.test", "bob@local.test", message("alice@example.test", marker)); s.Stage != "" {
			t.Fatalf("rejected: %+v", s)
		}
		got := pf.waitMail(marker)
		if d := z.verifyAll(t, got); len(d) != 2 {
			t.Fatalf("%s: %d valid signatures, want 2", marker, len(d))
		}
		var sels []string
		for _, m := range regexp.MustCompile(`(?s)DKIM-Signature:.*?\bs=([^;\s]+)`).FindAllSubmatch(got, -1) {
			sels = append(sels, string(m[1]))
		}
		slices.Sort(sels)
		return sels
	}
	current := []string{"cur", "cur-ed"}
	nextSels := []string{next["rsa"][0], next["ed25519"][0]}
	slices.Sort(nextSels)
	waitLog := func(want string, count int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(v.logs.String(), want) < count {
			if time.Now().After(deadline) {
				t.Fatalf("log never said %q %d times:\n%s", want, count, v.logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	if got := send(); !slices.Equal(got, current) {
		t.Fatalf("before the next records are published: signed with %v, want %v", got, current)
	}
	// Let the daemon look at least once with nothing published.
	time.Sleep(time.Second)
	if got := send(); !slices.Equal(got, current) {
		t.Fatalf("next records absent: signed with %v, want %v", got, current)
	}

	z.publish(t, filepath.Dir(next["rsa"][1]), "example.test", next["rsa"][0])
	z.publish(t, filepath.Dir(next["ed25519"][1]), "example.test", next["ed25519"][0])
	published := time.Now()
	waitLog("the next key is published", 2)
	got := send()
	if time.Since(published) < 5*time.Second && !slices.Equal(got, current) {
		t.Fatalf("within publish_delay: signed with %v, want %v", got, current)
	}

	waitLog("switched to the next key", 2)
	if got := send(); !slices.Equal(got, nextSels) {
		t.Fatalf("after publish_delay: signed with %v, want %v", got, nextSels)
	}
	if c := strings.Count(v.logs.String(), "switched to the next key"); c != 2 {
		t.Errorf("switch logged %d times, want once per key", c)
	}

	// A restart reads the state file: no way back to the old keys, even
	// before the first check. The old records can go once no mail signed
	// with them is in flight any more.
	v.stop()
	v.start()
	z.Remove("cur._domainkey.example.test")
	z.Remove("cur-ed._domainkey.example.test")
	if got := send(); !slices.Equal(got, nextSels) {
		t.Fatalf("after a restart: signed with %v, want %v", got, nextSels)
	}

	out, err := exec.Command(vouchBin, "keys", "-config", v.config).CombinedOutput()
	if err != nil {
		t.Fatalf("vouch keys: %v\n%s", err, out)
	}
	for _, want := range []string{"switched at", "then publish it empty", "signing:   false"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("vouch keys does not say %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "rotation.json")); err != nil {
		t.Error(err)
	}
}
