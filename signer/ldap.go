package signer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// DefaultLDAPTimeout is OpenDKIM's LDAPTimeout default (DKIMF_LDAP_DEFTIMEOUT).
const DefaultLDAPTimeout = 5 * time.Second

// ldapIdleClose: a connection unused this long is closed (and opened
// again on the next query). A busy server never reaches it; it also
// releases the connection of a Signer that a reload replaced.
const ldapIdleClose = 2 * time.Minute

// ldapClient talks to the servers of one data set (both tables share one
// client when they name the same servers, as Zimbra's do).
//
// Connection handling: one connection, shared. go-ldap multiplexes
// concurrent requests on a connection by message ID, so milter sessions
// query in parallel without a pool. The mutex is held only to (re)connect:
// one goroutine dials (trying the servers in order) while the others wait
// and share its outcome, so a dead server costs one dial per outage burst,
// not one per message. A query that fails because the connection broke
// (server restarted, idle connection dropped by a firewall, timeout) is
// retried once on a new connection, as OpenDKIM does (LDAP_SERVER_DOWN or
// LDAP_TIMEOUT: unbind, reconnect, query again once).
type ldapClient struct {
	servers  []ldapServer
	bindDN   string
	password string
	useTLS   bool
	roots    *x509.CertPool
	timeout  time.Duration
	idle     time.Duration

	queries atomic.Uint64

	mu      sync.Mutex
	conn    *ldap.Conn
	server  ldapServer // the server conn is connected to
	lastUse time.Time
	dialAt  time.Time // end of the last dial, and its error
	dialErr error
	timer   *time.Timer
}

// ldapSettings are the connection settings shared by every data set.
type ldapSettings struct {
	bindDN, password string
	useTLS           bool
	roots            *x509.CertPool
	timeout          time.Duration
}

func (st ldapSettings) client(servers []ldapServer) *ldapClient {
	return &ldapClient{servers: servers, bindDN: st.bindDN, password: st.password, useTLS: st.useTLS,
		roots: st.roots, timeout: st.timeout, idle: ldapIdleClose}
}

// cleartextWarnings names the servers a simple bind would send the
// password to in clear: ldap:// without StartTLS to a host that is not
// loopback (ldaps:// and ldapi:// are safe, and so is loopback).
func (c *ldapClient) cleartextWarnings() []string {
	if c.password == "" || c.useTLS {
		return nil
	}
	var out []string
	for _, srv := range c.servers {
		if srv.scheme != "ldap" || isLoopbackHost(srv.host()) {
			continue
		}
		out = append(out, fmt.Sprintf("LDAP server %s: the bind password of %q goes over the network in clear text: use ldaps://, signing.ldap_use_tls = true (StartTLS) or ldapi://", srv, c.bindDN))
	}
	return out
}

// isLoopbackHost: "localhost" or a loopback address.
func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// loadCAFile reads PEM CA certificates for LDAP TLS.
func loadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// search runs one query of a data set for key ($d) and returns the first
// value of each of its attributes, in order ("" when the entry lacks one),
// from the first entry found. found is false when nothing matched, as when
// the base DN does not exist (OpenDKIM's LDAP_NAME_ERROR).
func (c *ldapClient) search(ds *ldapDataset, key string) (vals []string, found bool, err error) {
	if !utf8.ValidString(key) {
		// LDAP strings are UTF-8 (RFC 4511 §4.1.2) and go-ldap's EscapeDN
		// would turn the bad bytes into U+FFFD: such a key matches nothing.
		return nil, false, nil
	}
	timeLimit := int((c.timeout + time.Second - 1) / time.Second)
	req := ldap.NewSearchRequest(expandLDAP(ds.base, key, true), ds.scope, ldap.NeverDerefAliases, 0, timeLimit, false,
		expandLDAP(ds.filter, key, false), ds.attrs, nil)
	res, err := c.do(req)
	switch {
	case nameError(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case len(res.Entries) == 0:
		return nil, false, nil
	}
	e := res.Entries[0]
	vals = make([]string, len(ds.attrs))
	for i, a := range ds.attrs {
		if v := e.GetEqualFoldRawAttributeValues(a); len(v) > 0 {
			vals[i] = string(v[0])
		}
	}
	return vals, true, nil
}

// do sends a search on the shared connection, reconnecting once if the
// connection turns out to be broken.
func (c *ldapClient) do(req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	conn, srv, fresh, err := c.get()
	if err != nil {
		return nil, err
	}
	c.queries.Add(1)
	res, err := conn.Search(req)
	if err != nil && brokenConn(err) {
		c.drop(conn)
		if fresh {
			return nil, fmt.Errorf("%s: %s", srv, ldapErrText(err))
		}
		if conn, srv, _, err = c.get(); err != nil {
			return nil, err
		}
		c.queries.Add(1)
		if res, err = conn.Search(req); err != nil && brokenConn(err) {
			c.drop(conn)
		}
	}
	if err != nil && !nameError(err) {
		return nil, fmt.Errorf("%s: search %q %s: %s", srv, req.BaseDN, req.Filter, ldapErrText(err))
	}
	return res, err
}

// nameError: the base DN does not exist or is not usable, which OpenDKIM
// reads as "not found" (LDAP_NAME_ERROR: result codes 32 to 36).
func nameError(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchObject, ldap.LDAPResultAliasProblem,
		ldap.LDAPResultInvalidDNSyntax, ldap.LDAPResultIsLeaf, ldap.LDAPResultAliasDereferencingProblem)
}

// brokenConn: errors after which the connection is not used again.
func brokenConn(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.ErrorUnexpectedMessage, ldap.ErrorUnexpectedResponse,
		ldap.ErrorMalformedPacket, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable)
}

// get returns the shared connection, connecting first if there is none.
// fresh is true for the caller that made the connection.
func (c *ldapClient) get() (conn *ldap.Conn, srv ldapServer, fresh bool, err error) {
	start := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && !c.conn.IsClosing() {
		c.lastUse = time.Now()
		return c.conn, c.server, false, nil
	}
	if c.conn != nil {
		go c.conn.Close()
		c.conn = nil
	}
	// Someone else dialed while we waited for the lock, and failed: share
	// the failure rather than making every waiting session dial in turn.
	if c.dialErr != nil && c.dialAt.After(start) {
		return nil, srv, false, c.dialErr
	}
	conn, srv, err = c.dial()
	c.dialAt, c.dialErr = time.Now(), err
	if err != nil {
		return nil, srv, false, err
	}
	c.conn, c.server, c.lastUse = conn, srv, time.Now()
	if c.timer == nil {
		c.timer = time.AfterFunc(c.idle, c.closeIdle)
	} else {
		c.timer.Reset(c.idle)
	}
	return conn, srv, true, nil
}

// drop forgets a connection that failed.
func (c *ldapClient) drop(conn *ldap.Conn) {
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
	}
	c.mu.Unlock()
	go conn.Close()
}

// closeIdle closes the connection once it has not been used for c.idle.
func (c *ldapClient) closeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return
	}
	if rest := c.idle - time.Since(c.lastUse); rest > 0 {
		c.timer.Reset(rest)
		return
	}
	go quit(c.conn)
	c.conn = nil
}

// close closes the connection; a later query opens a new one.
func (c *ldapClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.conn != nil {
		quit(c.conn)
		c.conn = nil
	}
}

// quit ends a connection that works with an unbind, as OpenDKIM's
// ldap_unbind_ext does.
func quit(conn *ldap.Conn) {
	if err := conn.Unbind(); err != nil {
		conn.Close()
	}
}

// dial tries the servers in the order given and returns the first
// connection that is up, encrypted if asked and bound. A refused bind
// (wrong DN or password) stops there: the other servers hold the same
// directory.
func (c *ldapClient) dial() (*ldap.Conn, ldapServer, error) {
	var errs []string
	for _, srv := range c.servers {
		conn, err := c.dialOne(srv)
		if err == nil {
			return conn, srv, nil
		}
		if ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication) {
			return nil, srv, err
		}
		errs = append(errs, err.Error())
	}
	if len(errs) == 1 {
		return nil, ldapServer{}, errors.New(errs[0])
	}
	return nil, ldapServer{}, fmt.Errorf("no LDAP server answered: %s", strings.Join(errs, "; "))
}

func (c *ldapClient) dialOne(srv ldapServer) (*ldap.Conn, error) {
	opts := []ldap.DialOpt{ldap.DialWithDialer(&net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second})}
	if srv.scheme == "ldaps" {
		opts = append(opts, ldap.DialWithTLSConfig(c.tlsConfig(srv)))
	}
	conn, err := ldap.DialURL(srv.String(), opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", srv, ldapErrText(err))
	}
	conn.SetTimeout(c.timeout)
	// OpenDKIM: LDAPUseTLS starts TLS except on ldaps:// (already TLS);
	// a unix socket (ldapi://) needs none either.
	if c.useTLS && srv.scheme == "ldap" {
		if err := conn.StartTLS(c.tlsConfig(srv)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: StartTLS: %s", srv, ldapErrText(err))
		}
	}
	if c.bindDN != "" || c.password != "" {
		if err := conn.Bind(c.bindDN, c.password); err != nil {
			conn.Close()
			return nil, &bindError{srv: srv, dn: c.bindDN, err: err}
		}
	}
	return conn, nil
}

// bindError names the server and the bind DN, never the password.
type bindError struct {
	srv ldapServer
	dn  string
	err error
}

func (e *bindError) Error() string {
	return fmt.Sprintf("%s: bind as %q refused: %s", e.srv, e.dn, ldapErrText(e.err))
}

func (e *bindError) Unwrap() error { return e.err }

func (c *ldapClient) tlsConfig(srv ldapServer) *tls.Config {
	return &tls.Config{ServerName: srv.host(), RootCAs: c.roots, MinVersion: tls.VersionTLS12}
}

// ldapErrText is an LDAP error for a log line: the result's name and code
// and the server's diagnostic message, or the network error.
func ldapErrText(err error) string {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return err.Error()
	}
	var inner string
	if le.Err != nil {
		inner = le.Err.Error()
	}
	if le.ResultCode == ldap.ErrorNetwork {
		return inner
	}
	name, ok := ldap.LDAPResultCodeMap[le.ResultCode]
	if !ok {
		name = "error"
	}
	msg := fmt.Sprintf("%s (LDAP result %d)", strings.ToLower(name), le.ResultCode)
	if inner != "" {
		msg += ": " + inner
	}
	return msg
}
