package sockaddr

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		spec, network, addr, str string
	}{
		{"inet:8891@localhost", "tcp4", "localhost:8891", "inet:8891@localhost"},
		{"inet:8891@127.0.0.1", "tcp4", "127.0.0.1:8891", "inet:8891@127.0.0.1"},
		{"inet:8465@[127.0.0.1]", "tcp4", "127.0.0.1:8465", "inet:8465@127.0.0.1"},
		{"inet:8891", "tcp4", "0.0.0.0:8891", "inet:8891@0.0.0.0"},
		{"inet:8891@*", "tcp4", "0.0.0.0:8891", "inet:8891@0.0.0.0"},
		{"INET:8891@localhost", "tcp4", "localhost:8891", "inet:8891@localhost"},
		{"inet:08891@localhost", "tcp4", "localhost:8891", "inet:8891@localhost"},
		{"inet6:8891@[::1]", "tcp6", "[::1]:8891", "inet6:8891@[::1]"},
		{"inet6:8891", "tcp6", "[::]:8891", "inet6:8891@[::]"},
		{"inet:localhost:8891", "tcp4", "localhost:8891", "inet:8891@localhost"}, // Postfix spelling
		{"inet:[::1]:8891", "tcp4", "[::1]:8891", "inet:8891@[::1]"},
		{"unix:/run/vouch/vouch.sock", "unix", "/run/vouch/vouch.sock", "unix:/run/vouch/vouch.sock"},
		{"local:/run/vouch/vouch.sock", "unix", "/run/vouch/vouch.sock", "unix:/run/vouch/vouch.sock"},
		{"/run/vouch/vouch.sock", "unix", "/run/vouch/vouch.sock", "unix:/run/vouch/vouch.sock"},
	}
	for _, tc := range tests {
		a, err := Parse(tc.spec)
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		if a.Network != tc.network || a.Addr != tc.addr {
			t.Errorf("%s: got %s %s, want %s %s", tc.spec, a.Network, a.Addr, tc.network, tc.addr)
		}
		if a.String() != tc.str {
			t.Errorf("%s: String %q, want %q", tc.spec, a.String(), tc.str)
		}
	}
	for _, bad := range []string{"", "inet:", "inet:0@localhost", "inet:70000", "inet:abc@host", "tcp:8891", "unix:", "8891",
		"inet:25@mx example.com", "inet:25@[[::1]]", "inet:25@a@b", "inet:25@/tmp"} {
		if a, err := Parse(bad); err == nil {
			t.Errorf("%q: want error, got %v", bad, a)
		}
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	// A stale socket (nobody listening) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	// A live socket is not taken over.
	live := filepath.Join(dir, "live.sock")
	l2, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)

	tests := []struct {
		path, wantErr string
	}{
		{stale, ""},
		{filepath.Join(dir, "new.sock"), ""},
		{live, "another process is listening there"},
		{file, "exists and is not a socket"},
	}
	for _, tc := range tests {
		ln, err := Listen(Address{"unix", tc.path})
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.path, err)
				continue
			}
			ln.Close()
		} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: got %v, want %q", tc.path, err, tc.wantErr)
		}
	}
}

// FuzzParseSocket: whatever the input, Parse does not panic, and an
// address it accepts is well formed and survives String and Parse again
// unchanged.
func FuzzParseSocket(f *testing.F) {
	for _, s := range []string{"inet:8891@localhost", "inet:8891", "inet6:8891@[::1]", "inet6:25", "inet:localhost:8891",
		"inet:[::1]:25", "unix:/run/vouch/vouch.sock", "local:x", "/p", " unix: /p ", "inet:25@*", "inet:+25@h",
		"inet:25@fe80::1%eth0", "INET6:1@[::]", "inet:1@a@b", "inet:1@[[x]]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		a, err := Parse(spec)
		if err != nil {
			return
		}
		switch a.Network {
		case "unix":
			if a.Addr == "" {
				t.Fatalf("%q: empty path", spec)
			}
		case "tcp4", "tcp6":
			_, port, err := net.SplitHostPort(a.Addr)
			if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
				t.Fatalf("%q: bad host:port %q", spec, a.Addr)
			}
		default:
			t.Fatalf("%q: network %q", spec, a.Network)
		}
		b, err := Parse(a.String())
		if err != nil || b != a {
			t.Fatalf("%q: parsed %+v, String %q parsed %+v, %v", spec, a, a.String(), b, err)
		}
	})
}

// TestListenSocketOptions: an accepted TCP milter connection has no
// keep-alive (four setsockopt calls per connection saved; read_timeout
// closes a connection whose MTA vanished) and keeps TCP_NODELAY (the reply
// at end of message must not wait for a delayed ACK).
func TestListenSocketOptions(t *testing.T) {
	ln, err := Listen(Address{"tcp4", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 0},
		{"TCP_NODELAY", syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
	} {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), tc.level, tc.opt) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if (got != 0) != (tc.want != 0) {
			t.Errorf("%s = %d, want %d", tc.name, got, tc.want)
		}
	}
}
