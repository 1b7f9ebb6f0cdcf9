package domaincheck

import (
	"context"
	"net"
	"testing"
	"time"

	"vouch/internal/dnstest"
	"vouch/internal/resolver"
)

// TestReachable: any answer from a server, even an error rcode, counts as
// reachable (the checks then say what each lookup got); silence and a
// refused connection do not.
func TestReachable(t *testing.T) {
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().String()
	closed.Close()
	tests := []struct {
		name      string
		fault     dnstest.Fault
		addr      string // instead of the test server
		reachable bool
	}{
		{"answers", dnstest.None, "", true},
		{"SERVFAIL", dnstest.ServFail, "", true},
		{"REFUSED", dnstest.Refused, "", true},
		{"silent", dnstest.Drop, "", false},
		{"nothing listens", dnstest.None, closedAddr, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnstest.New(t)
			srv.SetFault(".", tc.fault)
			addr := srv.Addr
			if tc.addr != "" {
				addr = tc.addr
			}
			res, err := resolver.New(resolver.Config{Servers: []string{addr}, Timeout: 200 * time.Millisecond, Attempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := reachable(context.Background(), res); (err == nil) != tc.reachable {
				t.Fatalf("reachable: %v, want %v", err, tc.reachable)
			}
		})
	}
}
