// Package dnstest runs an authoritative-looking DNS server on loopback for
// tests: a zone given as text records, plus per-name faults (SERVFAIL,
// REFUSED, silence, slowness, truncation) so that tests can show every
// failure ends as a temporary error, never as "no record".
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// Fault is what the server does for a name instead of answering.
type Fault int

const (
	None           Fault = iota
	ServFail             // RCODE 2
	Refused              // RCODE 5
	Drop                 // no answer at all: the client times out
	Truncate             // TC over UDP with an empty answer, full answer over TCP
	TruncateAlways       // TC over UDP and over TCP
)

// Server is a DNS server for tests. It is safe for concurrent use.
type Server struct {
	Addr string // 127.0.0.1:port, UDP and TCP

	mu      sync.Mutex
	rrs     map[string][]mdns.RR // by lower-case owner name
	faults  map[string]Fault
	tfaults map[typedName]Fault // faults for one query type only
	delays  map[string]time.Duration
	queries atomic.Int64
	udp     *mdns.Server
	tcp     *mdns.Server
}

// New starts a server and stops it when the test ends. Records are zone
// file lines ("example.test. 300 IN A 192.0.2.1").
func New(t testing.TB, records ...string) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for _, r := range records {
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Start starts a server outside of a test (e.g. in a benchmark helper).
func Start() (*Server, error) {
	s := &Server{rrs: map[string][]mdns.RR{}, faults: map[string]Fault{}, tfaults: map[typedName]Fault{}, delays: map[string]time.Duration{}}
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			lastErr = err
			continue // the TCP port was taken: try another
		}
		s.Addr = pc.LocalAddr().String()
		s.udp = &mdns.Server{PacketConn: pc, Handler: s}
		s.tcp = &mdns.Server{Listener: ln, Handler: s}
		for _, srv := range []*mdns.Server{s.udp, s.tcp} {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go srv.ActivateAndServe()
			<-started
		}
		return s, nil
	}
	return nil, fmt.Errorf("dnstest: no free port: %v", lastErr)
}

// Close stops the server.
func (s *Server) Close() {
	s.udp.Shutdown()
	s.tcp.Shutdown()
}

// Add adds one record in zone file syntax.
func (s *Server) Add(record string) error {
	rr, err := mdns.NewRR(record)
	if err != nil {
		return fmt.Errorf("dnstest: %q: %w", record, err)
	}
	if rr == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := strings.ToLower(rr.Header().Name)
	s.rrs[name] = append(s.rrs[name], rr)
	return nil
}

// MustAdd is Add for records known to be valid.
func (s *Server) MustAdd(records ...string) {
	for _, r := range records {
		if err := s.Add(r); err != nil {
			panic(err)
		}
	}
}

// Remove drops every record of name.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rrs, strings.ToLower(mdns.Fqdn(name)))
}

// SetFault makes every query for name (any type) fail the given way.
func (s *Server) SetFault(name string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[strings.ToLower(mdns.Fqdn(name))] = f
}

// typedName is a name and a query type.
type typedName struct {
	name  string
	qtype uint16
}

// SetTypeFault makes queries of one type (mdns.TypeMX, ...) for name fail
// the given way while the name's other types answer normally, as when only
// one lookup of several times out.
func (s *Server) SetTypeFault(name string, qtype uint16, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tfaults[typedName{strings.ToLower(mdns.Fqdn(name)), qtype}] = f
}

// SetDelay delays every answer for name.
func (s *Server) SetDelay(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[strings.ToLower(mdns.Fqdn(name))] = d
}

// Queries is the number of queries received so far.
func (s *Server) Queries() int { return int(s.queries.Load()) }

// ServeDNS implements mdns.Handler.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	s.queries.Add(1)
	if len(r.Question) != 1 {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)

	s.mu.Lock()
	fault, delay := s.faults[name], s.delays[name]
	if f, ok := s.tfaults[typedName{name, q.Qtype}]; ok {
		fault = f
	}
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	switch fault {
	case Drop:
		return
	case ServFail:
		m.Rcode = mdns.RcodeServerFailure
		w.WriteMsg(m)
		return
	case Refused:
		m.Rcode = mdns.RcodeRefused
		w.WriteMsg(m)
		return
	case Truncate, TruncateAlways:
		if isUDP || fault == TruncateAlways {
			m.Truncated = true
			w.WriteMsg(m)
			return
		}
	}
	s.answer(m, name, q.Qtype)
	if isUDP {
		size := 512
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// answer fills m like a recursive resolver would: records, a followed
// CNAME chain, NODATA or NXDOMAIN with an SOA for negative caching.
func (s *Server) answer(m *mdns.Msg, name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for hops := 0; hops < 8; hops++ {
		var cname *mdns.CNAME
		found := false
		for _, rr := range s.rrs[name] {
			if rr.Header().Rrtype == qtype {
				m.Answer = append(m.Answer, mdns.Copy(rr))
				found = true
			} else if c, ok := rr.(*mdns.CNAME); ok {
				cname = c
			}
		}
		if found || cname == nil || qtype == mdns.TypeCNAME {
			break
		}
		m.Answer = append(m.Answer, mdns.Copy(cname))
		name = strings.ToLower(cname.Target)
	}
	if len(m.Answer) > 0 {
		return
	}
	if !s.existsLocked(name) {
		m.Rcode = mdns.RcodeNameError
	}
	soa, _ := mdns.NewRR(". 60 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60")
	m.Ns = append(m.Ns, soa)
}

// existsLocked reports whether name owns records or is an empty
// non-terminal (has names below it), which gives NODATA, not NXDOMAIN.
func (s *Server) existsLocked(name string) bool {
	if len(s.rrs[name]) > 0 {
		return true
	}
	suffix := "." + name
	for owner := range s.rrs {
		if strings.HasSuffix(owner, suffix) {
			return true
		}
	}
	return false
}
