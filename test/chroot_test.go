package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"vouch/internal/testutil"
)

// chrootMilter is the milter socket as README and contrib/postfix give it
// for Debian: smtpd and cleanup run chrooted in the queue directory, so
// both see vouch's socket at <queue_directory>/vouch/vouch.sock as
// /vouch/vouch.sock.
const chrootMilter = "unix:/vouch/vouch.sock"

// TestChrootedPostfix runs Postfix as Debian's master.cf does (smtpd,
// cleanup and pickup chrooted in the queue directory) with vouch on a unix
// socket in the queue directory, wired as the README says: mail over SMTP
// and mail from sendmail both arrive signed. The path as seen from outside
// the chroot (what the snippet used to give for non_smtpd_milters) reaches
// nothing from a chrooted service, and mail leaves unsigned; the test
// shows that too, so it catches a regression of the docs.
func TestChrootedPostfix(t *testing.T) {
	requirePostfix(t)
	pfGroup, err := user.LookupGroup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(pfGroup.Gid)
	dir := t.TempDir()
	z := newZone(t)
	key := z.genkey(t, dir, "example.test", "mail", "rsa")

	port := freePort(t)
	pf := startPostfix(t, []listener{{port, chrootMilter}}, chrootMilter, nil)
	name := fmt.Sprintf("127.0.0.1:%d", port)
	for _, svc := range []string{"smtpd/unix", "cleanup/unix", "pickup/unix", name + "/inet"} {
		postconf(t, pf.dir, "-F", svc+"/chroot=y")
	}
	pf.run("reload")
	for _, svc := range []string{"cleanup/unix/chroot = y", "pickup/unix/chroot = y", name + "/inet/chroot = y"} {
		if got := postconf(t, pf.dir, "-F", strings.SplitN(svc, " ", 2)[0]); strings.TrimSpace(got) != svc {
			t.Fatalf("master.cf: want %q, have %q", svc, got)
		}
	}
	queue := strings.TrimSpace(postconf(t, pf.dir, "-h", "queue_directory"))

	// As README's manual install: a directory Postfix's group may enter,
	// a socket it may write to.
	sockDir := filepath.Join(queue, "vouch")
	if err := os.Mkdir(sockDir, 0o750); err != nil {
		t.Fatal(err)
	}
	os.Chown(sockDir, 0, gid)
	sock := filepath.Join(sockDir, "vouch.sock")
	startVouchUnix(t, dir, sock, fmt.Sprintf(`socket_group = "postfix"
socket_mode = "0660"
[dns]
servers = [%q]
[signing]
internal_hosts = ["127.0.0.1"]
[[signing.key]]
domain = "example.test"
selector = "mail"
private_key = %q
[screen]
enabled = false
[verify]
enabled = false
`, z.Addr, key))
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want 0660", fi.Mode().Perm())
	}

	t.Run("SMTP through chrooted smtpd is signed", func(t *testing.T) {
		s := deliver(t, name, nil, "alice@example.test", "bob@local.test", message("alice@example.test", "chroot-smtp"))
		if s.Stage != "" {
			t.Fatalf("rejected: %+v", s)
		}
		if d := z.verifyAll(t, pf.waitMail("chroot-smtp")); !slices.Equal(d, []string{"example.test"}) {
			t.Fatalf("signatures for %v", d)
		}
	})
	t.Run("sendmail through chrooted cleanup is signed", func(t *testing.T) {
		pf.sendmail("alice@example.test", "bob@local.test", "From: alice@example.test\nTo: bob@local.test\nSubject: chroot-local\n\nsubmitted with sendmail\n")
		if d := z.verifyAll(t, pf.waitMail("chroot-local")); !slices.Equal(d, []string{"example.test"}) {
			t.Fatalf("signatures for %v", d)
		}
	})
	t.Run("the path outside the chroot reaches nothing", func(t *testing.T) {
		outside := "unix:" + sock
		postconf(t, pf.dir, "-P", name+"/inet/smtpd_milters="+outside)
		postconf(t, pf.dir, "-e", "non_smtpd_milters="+outside)
		pf.run("reload")
		time.Sleep(500 * time.Millisecond)
		deliver(t, name, nil, "alice@example.test", "bob@local.test", message("alice@example.test", "outside-smtp"))
		pf.sendmail("alice@example.test", "bob@local.test", "From: alice@example.test\nTo: bob@local.test\nSubject: outside-local\n\nsubmitted with sendmail\n")
		for _, marker := range []string{"outside-smtp", "outside-local"} {
			if got := pf.waitMail(marker); signatures(got) != 0 {
				t.Fatalf("%s: signed through %s from inside the chroot?\n%s", marker, outside, got)
			}
		}
		// milter_default_action = accept: Postfix only logs it.
		if want := "connect to Milter service " + outside + ": No such file or directory"; !strings.Contains(pf.log(), want) {
			t.Fatalf("postfix log lacks %q:\n%s", want, pf.log())
		}
	})
}

// postconf runs postconf -c dir with args and returns its output.
func postconf(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("/usr/sbin/postconf", append([]string{"-c", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("postconf %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// startVouchUnix runs vouch serve on the unix socket sock (config gets the
// listen line) and waits until the socket answers.
func startVouchUnix(t testing.TB, dir, sock, config string) *vouch {
	t.Helper()
	path := filepath.Join(dir, "vouch-unix.toml")
	write(t, path, fmt.Sprintf("listen = \"unix:%s\"\n", sock)+config)
	v := &vouch{t: t, config: path, logs: &testutil.LogBuffer{}}
	v.cmd = exec.Command(vouchBin, "serve", "-config", path, "-shutdown-timeout", "5s")
	v.cmd.Stdout, v.cmd.Stderr = v.logs, v.logs
	v.cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "NOTIFY_SOCKET=") })
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.stop()
		if t.Failed() {
			t.Logf("vouch log (%s):\n%s", path, v.logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("vouch does not listen on %s:\n%s", sock, v.logs.String())
	return nil
}
