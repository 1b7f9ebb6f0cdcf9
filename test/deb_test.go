package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"vouch/internal/config"
	"vouch/internal/testutil"
)

// TestDebianPackage builds the package with packaging/build-deb.sh,
// installs it on this machine with dpkg -i, uses the installed vouch
// (check the shipped configuration, make keys as root and as the vouch
// user), and purges it again. It refuses to run where a vouch package is
// already installed.
func TestDebianPackage(t *testing.T) {
	if os.Getenv("VOUCH_SKIP_E2E") != "" {
		t.Skip("VOUCH_SKIP_E2E set")
	}
	if os.Geteuid() != 0 {
		t.Fatal("installing a package needs root")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "adduser", "runuser"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: %v", tool, err)
		}
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "vouch").Output(); strings.Contains(string(out), "installed") {
		t.Fatalf("a vouch package is installed here (%s): not replacing it", out)
	}
	_, err := user.Lookup("vouch")
	userExisted := err == nil
	_, err = os.Stat("/etc/vouch/keys")
	keysExisted := err == nil

	run := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	const version, upgrade = "0.0.0~e2e1", "0.0.0~e2e2"
	deb := buildDeb(t, version)
	if got := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Depends"); !strings.Contains(got, "Package: vouch") || !strings.Contains(got, "Version: "+version) {
		t.Fatalf("control fields:\n%s", got)
	}
	contents := run(t, "dpkg-deb", "-c", deb)
	for _, path := range []string{"./usr/sbin/vouch", "./lib/systemd/system/vouch.service", "./usr/share/doc/vouch/examples/vouch.toml", "./usr/share/doc/vouch/README.md", "./usr/share/doc/vouch/examples/runit-run"} {
		if !strings.Contains(contents, " "+path+"\n") {
			t.Errorf("%s is not in the package:\n%s", path, contents)
		}
	}
	for _, f := range []string{"postinst", "prerm", "postrm", "md5sums"} {
		run(t, "dpkg-deb", "-I", deb, f)
	}
	// The configuration is no conffile (see build-deb.sh): nothing for
	// dpkg to ask about on upgrade.
	if out, err := exec.Command("dpkg-deb", "-I", deb, "conffiles").CombinedOutput(); err == nil {
		t.Errorf("the package has conffiles:\n%s", out)
	}

	t.Cleanup(func() {
		exec.Command("dpkg", "--purge", "vouch").Run()
		if !keysExisted {
			os.RemoveAll("/etc/vouch/keys")
			os.Remove("/etc/vouch")
		}
		if !userExisted {
			exec.Command("deluser", "--system", "vouch").Run()
			exec.Command("delgroup", "--system", "vouch").Run()
		}
	})
	// Stdin is /dev/null, as under unattended-upgrades or Ansible: a
	// dpkg prompt would fail the installation.
	installed := run(t, "dpkg", "-i", deb)
	t.Logf("dpkg -i:\n%s", installed)

	t.Run("installed binary and shipped configuration", func(t *testing.T) {
		if got := run(t, "/usr/sbin/vouch", "version"); !strings.Contains(got, version) {
			t.Errorf("vouch version: %s", got)
		}
		run(t, "/usr/sbin/vouch", "serve", "-check", "-config", "/etc/vouch/vouch.toml")
		// The shipped file documents the defaults and changes nothing.
		cfg, err := config.Load("/etc/vouch/vouch.toml")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Path = ""
		if def := config.Default(); !reflect.DeepEqual(cfg, def) {
			t.Errorf("/etc/vouch/vouch.toml changes the defaults:\n%+v\n%+v", cfg, def)
		}
		if shipped, _ := os.ReadFile("/usr/share/doc/vouch/examples/vouch.toml"); !bytes.Equal(shipped, mustRead(t, "/etc/vouch/vouch.toml")) {
			t.Error("/etc/vouch/vouch.toml is not the shipped example")
		}
		// No key configured: installed, not enabled (see postinst).
		if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/vouch.service"); err == nil {
			t.Error("vouch.service enabled without a key")
		}
		if !strings.Contains(installed, "not enabled") {
			t.Error("dpkg -i does not say what to do next")
		}
	})

	t.Run("vouch user and key directory", func(t *testing.T) {
		u, err := user.Lookup("vouch")
		if err != nil {
			t.Fatal(err)
		}
		if g, err := user.LookupGroup("vouch"); err != nil || g.Gid != u.Gid {
			t.Fatalf("group vouch: %v %+v", err, g)
		}
		for path, want := range map[string]struct {
			mode  os.FileMode
			owner string
			group string
		}{
			"/etc/vouch":      {0o775, "0", u.Gid},
			"/etc/vouch/keys": {0o750, u.Uid, u.Gid},
		} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Perm() != want.mode || fi.Mode()&os.ModeDir == 0 || fmt.Sprint(st.Uid) != want.owner || fmt.Sprint(st.Gid) != want.group {
				t.Errorf("%s: %v uid %d gid %d, want %v %s:%s", path, fi.Mode(), st.Uid, st.Gid, want.mode, want.owner, want.group)
			}
		}
	})

	t.Run("genkey", func(t *testing.T) {
		dir := t.TempDir()
		run(t, "/usr/sbin/vouch", "genkey", "-d", "example.test", "-s", "test", "-D", dir)
		fi, err := os.Stat(filepath.Join(dir, "test.private"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("test.private: %v %v", fi, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "test.txt")); err != nil {
			t.Fatal(err)
		}

		// The documented way: the vouch user makes its key in
		// /etc/vouch/keys, and vouch (as that user) can load it.
		run(t, "runuser", "-u", "vouch", "--", "/usr/sbin/vouch", "genkey", "-d", "example.test", "-s", "pkg", "-D", "/etc/vouch/keys/example.test")
		// A file vouch's user can read (t.TempDir's parent is 0700).
		conf := "/etc/vouch/e2e-test.toml"
		defer os.Remove(conf)
		write(t, conf, "[[signing.key]]\ndomain = \"example.test\"\nselector = \"pkg\"\nprivate_key = \"/etc/vouch/keys/example.test/pkg.private\"\n")
		run(t, "runuser", "-u", "vouch", "--", "/usr/sbin/vouch", "serve", "-check", "-config", conf)
	})

	t.Run("socket directory in Postfix's chroot", func(t *testing.T) {
		if _, err := user.LookupGroup("postfix"); err != nil {
			t.Skip("no postfix group here")
		}
		if out := run(t, "id", "-nG", "vouch"); !slices.Contains(strings.Fields(out), "postfix") {
			t.Errorf("vouch is not in group postfix: %s", out)
		}
		fi, err := os.Stat("/var/spool/postfix/vouch")
		if err != nil {
			t.Fatal(err)
		}
		pf, _ := user.LookupGroup("postfix")
		u, _ := user.Lookup("vouch")
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o750 || fmt.Sprint(st.Uid) != u.Uid || fmt.Sprint(st.Gid) != pf.Gid {
			t.Errorf("/var/spool/postfix/vouch: %v uid %d gid %d, want 0750 vouch:postfix", fi.Mode(), st.Uid, st.Gid)
		}
		// The vouch user makes its socket there, with group postfix.
		conf := "/etc/vouch/e2e-socket.toml"
		defer os.Remove(conf)
		write(t, conf, "listen = \"unix:/var/spool/postfix/vouch/vouch.sock\"\nsocket_group = \"postfix\"\nsocket_mode = \"0660\"\n[screen]\nenabled = false\n")
		cmd := exec.Command("setpriv", "--reuid=vouch", "--regid=vouch", "--init-groups", "/usr/sbin/vouch", "serve", "-config", conf)
		var logs testutil.LogBuffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			fi, err := os.Stat("/var/spool/postfix/vouch/vouch.sock")
			if err == nil && fi.Mode().Perm() == 0o660 && fmt.Sprint(fi.Sys().(*syscall.Stat_t).Gid) == pf.Gid {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no socket with group postfix and mode 0660: %v %v\n%s", fi, err, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("upgrade keeps the admin's configuration without asking", func(t *testing.T) {
		changed := append(mustRead(t, "/etc/vouch/vouch.toml"), []byte("\n# changed by the admin\n")...)
		if err := os.WriteFile("/etc/vouch/vouch.toml", changed, 0o644); err != nil {
			t.Fatal(err)
		}
		next := buildDeb(t, upgrade)
		// The shipped example differs between the two versions: as a
		// conffile, the local change would stop dpkg at a prompt.
		out := run(t, "dpkg", "-i", next)
		if strings.Contains(out, "Configuration file") {
			t.Errorf("dpkg asked about the configuration:\n%s", out)
		}
		if got := run(t, "dpkg-query", "-W", "-f=${Version}", "vouch"); got != upgrade {
			t.Errorf("installed version %q, want %s", got, upgrade)
		}
		if got := mustRead(t, "/etc/vouch/vouch.toml"); !bytes.Equal(got, changed) {
			t.Error("the upgrade replaced the changed configuration")
		}
		run(t, "/usr/sbin/vouch", "serve", "-check", "-config", "/etc/vouch/vouch.toml")
	})

	t.Run("purge", func(t *testing.T) {
		out := run(t, "dpkg", "--purge", "vouch")
		for _, gone := range []string{"/usr/sbin/vouch", "/etc/vouch/vouch.toml", "/lib/systemd/system/vouch.service", "/var/lib/vouch", "/var/spool/postfix/vouch"} {
			if _, err := os.Stat(gone); err == nil {
				t.Errorf("%s is still there after purge", gone)
			}
		}
		// Private keys outlive the package.
		if _, err := os.Stat("/etc/vouch/keys/example.test/pkg.private"); err != nil {
			t.Errorf("purge deleted a private key: %v", err)
		}
		if !strings.Contains(out, "/etc/vouch/keys still holds keys") {
			t.Errorf("purge does not mention the keys left behind:\n%s", out)
		}
	})
}

// buildDeb runs packaging/build-deb.sh and returns the .deb's path.
func buildDeb(t *testing.T, version string) string {
	t.Helper()
	build := exec.Command("../packaging/build-deb.sh", version, t.TempDir())
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GOFLAGS=") { // -race cannot build a static binary
			build.Env = append(build.Env, e)
		}
	}
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
