// Package sockaddr reads and opens milter sockets as OpenDKIM and Postfix
// write them: inet:PORT@HOST, inet6:PORT@[HOST], unix:/path (or local:,
// or a bare path), and Postfix's inet:HOST:PORT, so that a value copied
// from opendkim.conf's Socket or main.cf's smtpd_milters works as vouch's
// listen. It knows nothing about the milter protocol: the config checks
// the syntax with it, the daemon listens with it, and milterbench dials
// what it parsed.
package sockaddr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Address is a parsed socket specification.
type Address struct {
	Network string // "tcp4", "tcp6" or "unix"
	Addr    string // host:port or a path
}

// String is the address in OpenDKIM's syntax; Parse reads it back to the
// same Address.
func (a Address) String() string {
	if a.Network == "unix" {
		return "unix:" + a.Addr
	}
	host, port, err := net.SplitHostPort(a.Addr)
	if err != nil {
		return a.Network + ":" + a.Addr
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	proto := "inet"
	if a.Network == "tcp6" {
		proto = "inet6"
	}
	return proto + ":" + port + "@" + host
}

// Parse reads OpenDKIM's socket syntax (opendkim.conf(5) Socket):
//
//	inet:PORT@HOST     IPv4 on HOST (a name, an address or [address])
//	inet:PORT          IPv4, all addresses
//	inet6:PORT@[HOST]  IPv6 on HOST
//	inet6:PORT         IPv6, all addresses
//	unix:/path, local:/path or /path
//
// It also takes Postfix's spelling of the same socket (inet:HOST:PORT), so
// that a value copied from main.cf's smtpd_milters works too.
func Parse(spec string) (Address, error) {
	spec = strings.TrimSpace(spec)
	proto, rest, ok := strings.Cut(spec, ":")
	if !ok || strings.HasPrefix(spec, "/") {
		if strings.HasPrefix(spec, "/") {
			return Address{"unix", spec}, nil
		}
		return Address{}, fmt.Errorf("socket %q: want inet:PORT@HOST, inet6:PORT@[HOST] or unix:/path", spec)
	}
	switch strings.ToLower(proto) {
	case "unix", "local":
		if rest == "" {
			return Address{}, fmt.Errorf("socket %q: empty path", spec)
		}
		return Address{"unix", rest}, nil
	case "inet", "inet6":
		network := "tcp4"
		if strings.EqualFold(proto, "inet6") {
			network = "tcp6"
		}
		var port, host string
		if p, h, ok := strings.Cut(rest, "@"); ok {
			port, host = p, h
		} else if i := strings.LastIndex(rest, ":"); i >= 0 && network == "tcp4" {
			host, port = rest[:i], rest[i+1:] // Postfix's inet:host:port
		} else {
			port = rest
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return Address{}, fmt.Errorf("socket %q: bad port %q", spec, port)
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "*" {
			host = ""
		}
		if host == "" && network == "tcp4" {
			host = "0.0.0.0"
		}
		if host == "" && network == "tcp6" {
			host = "::"
		}
		if !validHost(host) {
			return Address{}, fmt.Errorf("socket %q: bad host %q (want a host name or an IP address)", spec, host)
		}
		return Address{network, net.JoinHostPort(host, strconv.Itoa(n))}, nil
	}
	return Address{}, fmt.Errorf("socket %q: unknown type %q (want inet, inet6, unix or local)", spec, proto)
}

// validHost accepts an IP address or a host name made of letters, digits,
// hyphens, underscores and dots: anything else (brackets, spaces, a second
// @) is a typo that would only fail later, at listen.
func validHost(h string) bool {
	if ip, err := netip.ParseAddr(h); err == nil {
		// netip takes any zone after %, "]" included: fe80::1%eth0 is
		// fine, ::%]0 would not survive host:port.
		return ip.Zone() == "" || validName(ip.Zone())
	}
	return validName(h)
}

func validName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// Listen opens the socket. A stale unix socket file left by a crashed
// daemon is removed first; a live one (something answers) is an error, as
// is a path that is not a socket.
func Listen(a Address) (net.Listener, error) {
	if a.Network == "unix" {
		if fi, err := os.Lstat(a.Addr); err == nil {
			if fi.Mode()&os.ModeSocket == 0 {
				return nil, fmt.Errorf("listen %s: exists and is not a socket", a.Addr)
			}
			if c, err := net.Dial("unix", a.Addr); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen %s: another process is listening there", a.Addr)
			}
			if err := os.Remove(a.Addr); err != nil {
				return nil, fmt.Errorf("listen %s: remove stale socket: %w", a.Addr, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("listen %s: %w", a.Addr, err)
		}
	}
	// No TCP keep-alive on accepted connections: Go's default costs four
	// setsockopt calls per connection (of ~30 syscalls per message), and
	// a milter connection whose MTA vanished is already closed by
	// limits.read_timeout.
	return (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), a.Network, a.Addr)
}
