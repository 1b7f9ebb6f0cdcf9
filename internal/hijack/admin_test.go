package hijack

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
