package milter

import "testing"

func TestParseAddress(t *testing.T) {
	tests := []struct {
		spec, network, addr string
	}{
		{"inet:8891@localhost", "tcp4", "localhost:8891"},
		{"inet:8891@127.0.0.1", "tcp4", "127.0.0.1:8891"},
		{"inet:8465@[127.0.0.1]", "tcp4", "127.0.0.1:8465"},
		{"inet:8891", "tcp4", "0.0.0.0:8891"},
		{"INET:8891@localhost", "tcp4", "localhost:8891"},
		{"inet6:8891@[::1]", "tcp6", "[::1]:8891"},
		{"inet6:8891", "tcp6", "[::]:8891"},
		{"inet:localhost:8891", "tcp4", "localhost:8891"}, // Postfix spelling
		{"unix:/run/vouch/vouch.sock", "unix", "/run/vouch/vouch.sock"},
		{"local:/run/vouch/vouch.sock", "unix", "/run/vouch/vouch.sock"},
		{"/run/vouch/vouch.sock", "unix", "/run/vouch/vouch.sock"},
	}
	for _, tc := range tests {
		a, err := ParseAddress(tc.spec)
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		if a.Network != tc.network || a.Addr != tc.addr {
			t.Errorf("%s: got %s %s, want %s %s", tc.spec, a.Network, a.Addr, tc.network, tc.addr)
		}
	}
	for _, bad := range []string{"", "inet:", "inet:0@localhost", "inet:70000", "inet:abc@host", "tcp:8891", "unix:", "8891"} {
		if a, err := ParseAddress(bad); err == nil {
			t.Errorf("%q: want error, got %v", bad, a)
		}
	}
}
