package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"vouch/internal/mtaclient"
)

// safeKeysBase is a directory whose every parent is root's and closed to
// others, so that only what a case sets up decides OpenDKIM's verdict (a
// key below /tmp is always unsafe to OpenDKIM: /tmp is world-writable).
// Everything in it is readable by the service user.
func safeKeysBase(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the key safety tests chown files: run them as root")
	}
	base, err := os.MkdirTemp("/var/lib", "vouch-safekeys-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	return base
}

// serviceUser is OpenDKIM's account, which the opendkim package creates.
func serviceUser(t testing.TB) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup("opendkim")
	if err != nil {
		t.Fatalf("user opendkim (made by the opendkim package): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// groupID is the gid of an existing group.
func groupID(t testing.TB, name string) int {
	t.Helper()
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.Atoi(g.Gid)
	return id
}

// TestSafeKeysSideBySide gives the same key files, owned and placed as in
// each case, to the real OpenDKIM (`opendkim -n`, which checks KeyFile
// with RequireSafeKeys exactly as the daemon does at start) and to
// `vouch serve -check`, and requires the same verdict:
//
//   - as root: OpenDKIM started by root with `UserID opendkim` judges the
//     key for the user it will run as; vouch checked by root accepts what
//     is safe for root or for the service user (vouch, opendkim);
//   - as the service user: both run as opendkim, and so also agree on
//     keys that user cannot read.
//
// The only deliberate difference: a sticky directory of root's (/tmp)
// above the key, which OpenDKIM refuses and vouch accepts.
func TestSafeKeysSideBySide(t *testing.T) {
	requireOpenDKIM(t)
	base := safeKeysBase(t)
	svc := serviceUser(t)
	od, daemonGID := int(svc.Uid), groupID(t, "daemon")
	odGID, nogroup, sslCert := int(svc.Gid), groupID(t, "nogroup"), groupID(t, "ssl-cert")
	daemonUID := 1 // user daemon, primary group daemon

	// vouch must be executable by the service user.
	bin := filepath.Join(base, "vouch")
	copyFile(t, vouchBin, bin, 0o755)
	if out, err := exec.Command("opendkim-genkey", "-D", base, "-d", "example.com", "-s", "sel").CombinedOutput(); err != nil {
		t.Fatalf("opendkim-genkey: %v\n%s", err, out)
	}
	keyData, err := os.ReadFile(filepath.Join(base, "sel.private"))
	if err != nil {
		t.Fatal(err)
	}

	type node struct {
		mode     os.FileMode
		uid, gid int
	}
	rootDir := node{0o755, 0, 0}
	tests := []struct {
		name      string
		key, dir  node
		link      string // "into-open": the key is a symlink in a 0777 directory to the case's key; "to-open": a symlink in a safe directory to a key in a 0777 one
		root, svc bool   // OpenDKIM's verdicts: safe as root (UserID opendkim), safe as opendkim
		vouchRoot *bool  // vouch's verdict as root when it differs on purpose
	}{
		{name: "0600 root:root", key: node{0o600, 0, 0}, dir: rootDir, root: true},
		{name: "0400 root:root", key: node{0o400, 0, 0}, dir: rootDir, root: true},
		{name: "0440 root:root, the classic recipe", key: node{0o440, 0, 0}, dir: rootDir, root: true},
		{name: "0640 root:root", key: node{0o640, 0, 0}, dir: rootDir, root: true},
		{name: "0644 root:root", key: node{0o644, 0, 0}, dir: rootDir},
		{name: "0640 root:nogroup, the primary group of nobody", key: node{0o640, 0, nogroup}, dir: rootDir},
		{name: "0640 root:ssl-cert, a group with a member", key: node{0o640, 0, sslCert}, dir: rootDir},
		{name: "0600 owned by another user", key: node{0o600, daemonUID, daemonGID}, dir: rootDir},
		{name: "0600 owned by the service user", key: node{0o600, od, odGID}, dir: rootDir, root: true, svc: true},
		{name: "0440 root:opendkim", key: node{0o440, 0, odGID}, dir: rootDir, root: true, svc: true},
		{name: "Debian layout: 0640 root:opendkim in 0750 root:opendkim", key: node{0o640, 0, odGID}, dir: node{0o750, 0, odGID}, root: true, svc: true},
		{name: "directory of the service user", key: node{0o640, od, odGID}, dir: node{0o700, od, odGID}, root: true, svc: true},
		{name: "directory writable by others", key: node{0o600, od, odGID}, dir: node{0o777, 0, 0}},
		{name: "sticky directory of root", key: node{0o600, od, odGID}, dir: node{0o777 | os.ModeSticky, 0, 0}, vouchRoot: ptr(true)},
		{name: "directory writable by a group with other users", key: node{0o600, 0, 0}, dir: node{0o770, 0, nogroup}},
		{name: "directory writable by root's group", key: node{0o600, 0, 0}, dir: node{0o775, 0, 0}, root: true},
		{name: "directory of another user", key: node{0o600, 0, 0}, dir: node{0o755, daemonUID, daemonGID}},
		{name: "read-only directory of another user", key: node{0o600, od, odGID}, dir: node{0o555, daemonUID, daemonGID}, root: true, svc: true},
		{name: "symlink in an open directory to a safe key", key: node{0o600, od, odGID}, dir: rootDir, link: "into-open", root: true, svc: true},
		{name: "symlink to a key in an open directory", key: node{0o600, od, odGID}, dir: rootDir, link: "to-open"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(base, fmt.Sprintf("case%d", i))
			mkdir(t, d)
			path := filepath.Join(d, "sel.private")
			write(t, path, string(keyData))
			chownMod(t, path, tc.key.uid, tc.key.gid, tc.key.mode)
			switch tc.link {
			case "into-open":
				open := filepath.Join(d, "open")
				mkdir(t, open)
				chownMod(t, open, 0, 0, 0o777)
				link := filepath.Join(open, "link.private")
				if err := os.Symlink(path, link); err != nil {
					t.Fatal(err)
				}
				path = link
			case "to-open":
				open := filepath.Join(d, "open")
				mkdir(t, open)
				moved := filepath.Join(open, "sel.private")
				if err := os.Rename(path, moved); err != nil {
					t.Fatal(err)
				}
				chownMod(t, open, 0, 0, 0o777)
				if err := os.Symlink(moved, path); err != nil {
					t.Fatal(err)
				}
			}
			chownMod(t, d, tc.dir.uid, tc.dir.gid, tc.dir.mode)

			odConf := func(userID string) string {
				p := filepath.Join(base, fmt.Sprintf("case%d-%s.conf", i, userID))
				write(t, p, fmt.Sprintf("Domain\texample.com\nSelector\tsel\nKeyFile\t%s\nRequireSafeKeys\tyes\nSyslog\tno\n%s", path,
					map[bool]string{true: "UserID\t" + userID + "\n"}[userID != ""]))
				os.Chmod(p, 0o644)
				return p
			}
			vouchConf := filepath.Join(base, fmt.Sprintf("case%d.toml", i))
			write(t, vouchConf, fmt.Sprintf("[screen]\nenabled = false\n[dns]\nservers = [\"127.0.0.1:1\"]\n[signing]\nrequire_safe_keys = true\n[[signing.key]]\ndomain = \"example.com\"\nselector = \"sel\"\nprivate_key = %q\n", path))
			os.Chmod(vouchConf, 0o644)

			gotODRoot, whyODRoot := runAs(nil, opendkimBin, "-n", "-x", odConf("opendkim"))
			gotODSvc, whyODSvc := runAs(svc, opendkimBin, "-n", "-x", odConf(""))
			gotVRoot, whyVRoot := runAs(nil, bin, "serve", "-check", "-config", vouchConf)
			gotVSvc, whyVSvc := runAs(svc, bin, "serve", "-check", "-config", vouchConf)
			t.Logf("opendkim as root: %v %s\nopendkim as opendkim: %v %s\nvouch as root: %v %s\nvouch as opendkim: %v %s",
				gotODRoot, whyODRoot, gotODSvc, whyODSvc, gotVRoot, whyVRoot, gotVSvc, whyVSvc)

			if gotODRoot != tc.root || gotODSvc != tc.svc {
				t.Errorf("OpenDKIM: safe as root %v, as opendkim %v; the test expects %v, %v", gotODRoot, gotODSvc, tc.root, tc.svc)
			}
			wantVRoot := gotODRoot
			if tc.vouchRoot != nil {
				wantVRoot = *tc.vouchRoot
			}
			if gotVRoot != wantVRoot {
				t.Errorf("as root: vouch says safe=%v, OpenDKIM %v (vouch: %s)", gotVRoot, gotODRoot, whyVRoot)
			}
			if tc.vouchRoot == nil && gotVSvc != gotODSvc {
				t.Errorf("as opendkim: vouch says safe=%v, OpenDKIM %v (vouch: %s)", gotVSvc, gotODSvc, whyVSvc)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func mkdir(t testing.TB, d string) {
	t.Helper()
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
}

func chownMod(t testing.TB, path string, uid, gid int, mode os.FileMode) {
	t.Helper()
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// runAs runs a command (as cred, or as root when nil) and reports whether
// it exited 0, with its output.
func runAs(cred *syscall.Credential, name string, args ...string) (bool, string) {
	cmd := exec.Command(name, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return err == nil, strings.TrimSpace(string(out))
}

// TestOpenDKIMClassicRecipe follows the classic how-to: opendkim-genkey,
// chmod 440, owner root:root, KeyFile/Selector/Domain in opendkim.conf.
// OpenDKIM signs with it; `vouch import-opendkim` converts it, and the
// result passes `vouch serve -check` (run by root) and signs the same.
func TestOpenDKIMClassicRecipe(t *testing.T) {
	requireOpenDKIM(t)
	base := safeKeysBase(t)
	z := newZone(t)
	keys := filepath.Join(base, "etc", "mail", "dkim")
	if err := os.MkdirAll(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("opendkim-genkey", "-D", keys, "-d", "example.com", "-s", "selector").CombinedOutput(); err != nil {
		t.Fatalf("opendkim-genkey: %v\n%s", err, out)
	}
	z.publish(t, keys, "example.com", "selector")
	chownMod(t, filepath.Join(keys, "selector.private"), 0, 0, 0o440)
	conf := fmt.Sprintf(`Domain			example.com
KeyFile			%s/selector.private
Selector		selector
InternalHosts		192.168.10.0/24, 127.0.0.1
Mode			sv
X-Header		Yes
Syslog			no
`, keys)

	send := func(addr string) []byte {
		t.Helper()
		headers, body := mtaclient.Split([]byte(message("alice@example.com", "classic")))
		r, err := sendPostfixLike(addr, &mtaclient.Message{
			ClientIP: "127.0.0.1", HELO: "localhost", From: "alice@example.com", Rcpts: []string{"bob@remote.test"},
			QueueID: "CLASSIC", Headers: headers, Body: strings.NewReader(string(body)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := outcome(t, r); len(got) != 1 || got[0] != "d=example.com s=selector" {
			t.Fatalf("%s: %q, want one signature d=example.com s=selector", addr, got)
		}
		return mtaclient.Render(r.Headers, body)
	}
	z.verifyAll(t, send(startOpenDKIM(t, base, conf)))

	confPath := filepath.Join(base, "opendkim.conf")
	write(t, confPath, conf)
	out, err := exec.Command(vouchBin, "import-opendkim", confPath).Output()
	if err != nil {
		t.Fatalf("vouch import-opendkim: %v", err)
	}
	// No Socket in the recipe, so no listen line: startVouch adds one on a
	// free port. And the test DNS.
	converted := string(out) + fmt.Sprintf("\n[dns]\nservers = [%q]\ntimeout = \"2s\"\n", z.Addr)
	path := filepath.Join(base, "vouch.toml")
	write(t, path, converted)
	if out, err := exec.Command(vouchBin, "serve", "-check", "-config", path).CombinedOutput(); err != nil {
		t.Fatalf("vouch serve -check refuses what OpenDKIM signs with: %v\n%s", err, out)
	}
	v := startVouch(t, base, converted)
	z.verifyAll(t, send(v.addr()))
}

// TestRootChecksServiceUserKey: root running `vouch serve -check`,
// `testkey` and `check` accepts a key the service user owns (0600, in a
// directory of root's), as the daemon running as that user will; and
// `vouch explain`, which signs nothing, works whatever the keys are.
func TestRootChecksServiceUserKey(t *testing.T) {
	base := safeKeysBase(t)
	svc := serviceUser(t)
	z := newZone(t, "example.com. 300 IN TXT \"v=spf1 -all\"", "_dmarc.example.com. 300 IN TXT \"v=DMARC1; p=reject\"")
	key := z.genkey(t, filepath.Join(base, "keys"), "example.com", "sel", "rsa")
	chownMod(t, key, int(svc.Uid), int(svc.Gid), 0o600)
	cfg := filepath.Join(base, "vouch.toml")
	signing := fmt.Sprintf("[dns]\nservers = [%q]\ntimeout = \"1s\"\n[screen]\nenabled = false\n[signing]\ninternal_hosts = [\"127.0.0.1\"]\n[[signing.key]]\ndomain = \"example.com\"\nselector = \"sel\"\nprivate_key = %q\n", z.Addr, key)
	write(t, cfg, signing)
	for _, args := range [][]string{
		{"serve", "-check", "-config", cfg},
		{"testkey", "-config", cfg},
		{"check", "-config", cfg, "example.com"},
	} {
		out, err := runVouch(args...)
		if strings.Contains(out, "owned by uid") || strings.Contains(out, "require_safe_keys") {
			t.Errorf("vouch %s refuses the service user's key:\n%s", args[0], out)
		}
		if args[0] != "check" && err != nil {
			t.Errorf("vouch %s: %v\n%s", args[0], err, out)
		}
		if status := exitStatus(err); args[0] == "check" && status == 3 {
			t.Errorf("vouch check: configuration error:\n%s", out)
		}
	}

	// explain loads no key: a missing or unsafe one changes nothing.
	chownMod(t, key, 1, 1, 0o644) // user daemon's, readable by all
	for name, content := range map[string]string{
		"unsafe":  signing,
		"missing": strings.Replace(signing, key, key+".missing", 1),
	} {
		write(t, cfg, content)
		out, err := runVouch("explain", "-config", cfg, "-ip", "127.0.0.1")
		if err != nil || !strings.Contains(out, "internal host (signing.internal_hosts entry 127.0.0.1/32)") {
			t.Errorf("explain with a %s key: %v\n%s", name, err, out)
		}
	}
}
