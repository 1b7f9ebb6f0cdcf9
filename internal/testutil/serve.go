package testutil

import (
	"context"
	"net"
	"testing"
	"time"
)

// Server is what vouch's milter server offers. An interface, so that this
// package imports no vouch package and milter's own tests can use it.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Serve runs srv on a new listener (network "tcp", "tcp4" or "unix") until
// the test ends, then shuts it down, and returns the listener.
func Serve(t testing.TB, srv Server, network, address string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln
}
