package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"vouch/internal/config"
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

	const version = "0.0.0~e2e1"
	build := exec.Command("../packaging/build-deb.sh", version, t.TempDir())
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GOFLAGS=") { // -race cannot build a static binary
			build.Env = append(build.Env, e)
		}
	}
	outb, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, outb)
	}
	out := string(outb)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	deb := lines[len(lines)-1]
	if got := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Depends"); !strings.Contains(got, "Package: vouch") || !strings.Contains(got, "Version: "+version) {
		t.Fatalf("control fields:\n%s", got)
	}
	contents := run(t, "dpkg-deb", "-c", deb)
	for _, path := range []string{"./usr/sbin/vouch", "./lib/systemd/system/vouch.service", "./etc/vouch/vouch.toml", "./usr/share/doc/vouch/README.md"} {
		if !strings.Contains(contents, " "+path+"\n") {
			t.Errorf("%s is not in the package:\n%s", path, contents)
		}
	}
	for _, f := range []string{"postinst", "prerm", "postrm", "conffiles", "md5sums"} {
		run(t, "dpkg-deb", "-I", deb, f)
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
		if got := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "vouch"); !strings.Contains(got, "/etc/vouch/vouch.toml") {
			t.Errorf("conffiles: %q", got)
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

	t.Run("reinstall keeps the admin's configuration", func(t *testing.T) {
		conf, err := os.ReadFile("/etc/vouch/vouch.toml")
		if err != nil {
			t.Fatal(err)
		}
		changed := append(conf, []byte("\n# changed by the admin\n")...)
		if err := os.WriteFile("/etc/vouch/vouch.toml", changed, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "dpkg", "-i", deb)
		if got, _ := os.ReadFile("/etc/vouch/vouch.toml"); string(got) != string(changed) {
			t.Error("reinstalling replaced the changed conffile")
		}
		run(t, "/usr/sbin/vouch", "serve", "-check", "-config", "/etc/vouch/vouch.toml")
	})

	t.Run("purge", func(t *testing.T) {
		out := run(t, "dpkg", "--purge", "vouch")
		for _, gone := range []string{"/usr/sbin/vouch", "/etc/vouch/vouch.toml", "/lib/systemd/system/vouch.service", "/var/lib/vouch"} {
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
