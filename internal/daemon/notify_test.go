package daemon

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "notify.sock")
		env := path
		listen := path
		if abstract {
			env = "@vouch-test-" + filepath.Base(t.TempDir())
			listen = "\x00" + env[1:]
		}
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: listen, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", env)
		for _, state := range []string{"READY=1", reloadingState(), "STOPPING=1"} {
			if err := notify(state); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 256)
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(buf[:n]); got != state {
				t.Fatalf("got %q, want %q", got, state)
			}
		}
		conn.Close()
	}
	if !strings.HasPrefix(reloadingState(), "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("reloading state %q", reloadingState())
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := notify("READY=1"); err != nil {
		t.Fatalf("without systemd: %v", err)
	}
}
