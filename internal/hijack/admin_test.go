package hijack

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"vouch/internal/testutil"
)

// TestAdminSocket: mode 0600, a stale socket is replaced, a socket in use
// or a file that is not a socket is refused, bad requests get an error.
func TestAdminSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "admin.sock")
	os.MkdirAll(filepath.Dir(sock), 0o750)

	// A socket file left behind by a dead daemon.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatal("stale socket not left:", err)
	}

	cfg := testConfig(t, newClock())
	cfg.AdminSocket = sock
	g := newGuard(t, cfg)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v", fi.Mode())
	}

	// A second daemon on the same socket.
	if _, err := New(cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second guard: %v", err)
	}
	// A regular file is never removed.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o644)
	cfg2 := cfg
	cfg2.AdminSocket = plain
	if _, err := New(cfg2, testLogger(t)); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("plain file: %v", err)
	}

	for req, want := range map[string]string{
		"{\"cmd\":\"explode\"}\n": `{"ok":false,"error":"unknown command \"explode\""}`,
		"not json\n":              `{"ok":false,"error":"bad request: `,
		"{\"cmd\":\"release\"}\n": `{"ok":false,"error":"empty login"`,
	} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, req)
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(line, want) {
			t.Errorf("%q: got %q", req, line)
		}
	}

	send(g, "alice@example.com", ip1, 3)
	l, err := AdminList(ctx(), sock)
	if err != nil || len(l.Accounts) != 1 || l.Accounts[0].Recipients != 3 {
		t.Fatalf("list %+v %v", l, err)
	}
	g.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
	if _, err := AdminList(ctx(), sock); err == nil || !strings.Contains(err.Error(), "cannot reach the vouch daemon") {
		t.Fatalf("daemon gone: %v", err)
	}
}

// TestAdminSocketPlacement: the socket is 0600 inside a private directory
// from the moment it is bound (no window with the umask's mode), another
// user's socket at the path is refused and left alone, a directory
// everyone can write to is refused unless sticky, and a sticky one (/tmp)
// works.
func TestAdminSocketPlacement(t *testing.T) {
	testutil.RequireRoot(t) // to give files to another user

	t.Run("bound privately", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "admin.sock")
		old := syscall.Umask(0) // the worst umask: the old code's socket was 0777 until its chmod
		defer syscall.Umask(old)
		called := false
		adminBound = func(bound string) {
			called = true
			fi, err := os.Stat(bound)
			di, derr := os.Stat(filepath.Dir(bound))
			if err != nil || derr != nil || fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
				t.Errorf("bound socket %v (%v) in directory %v (%v), want 0600 in 0700", fi.Mode(), err, di.Mode(), derr)
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("the final path exists before the socket is ready: %v", err)
			}
		}
		defer func() { adminBound = nil }()
		ln, err := listenAdmin(sock)
		if err != nil || !called {
			t.Fatalf("listen: %v (hook called: %v)", err, called)
		}
		defer ln.Close()
		if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket %v %v", fi, err)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(sock), ".admin-*")); len(left) != 0 {
			t.Fatalf("private directory left behind: %v", left)
		}
	})

	t.Run("another user's socket", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "admin.sock")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close() // stale, so the old code removed it and took the path
		if err := os.Lchown(sock, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := listenAdmin(sock); err == nil || !strings.Contains(err.Error(), "socket of uid 65534") {
			t.Fatalf("got %v, want a refusal naming the owner", err)
		}
		if fi, err := os.Lstat(sock); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
			t.Fatalf("the other user's socket was touched: %v", err)
		}
	})

	t.Run("world-writable directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "open")
		os.Mkdir(dir, 0o777)
		os.Chmod(dir, 0o777)
		if _, err := listenAdmin(filepath.Join(dir, "admin.sock")); err == nil || !strings.Contains(err.Error(), "writable by everyone and not sticky") {
			t.Fatalf("got %v", err)
		}
		os.Chmod(dir, 0o777|os.ModeSticky)
		ln, err := listenAdmin(filepath.Join(dir, "admin.sock"))
		if err != nil {
			t.Fatalf("sticky directory: %v", err)
		}
		ln.Close()
		if _, err := os.Lstat(filepath.Join(dir, "admin.sock")); !os.IsNotExist(err) {
			t.Fatalf("socket left after Close: %v", err)
		}
	})
}
