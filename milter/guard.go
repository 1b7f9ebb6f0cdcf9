package milter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Packet limits. go-milter v0.10.2 allocates a packet's whole length as
// soon as the 4-byte length arrives, so the guard checks every length
// (with the command byte that follows it) before go-milter sees it.
const (
	// freePacket: packets up to this size need no share of
	// limits.max_packet_memory. Before negotiation only an OPTNEG packet
	// of at most this size is allowed (Postfix's is 13 bytes).
	freePacket = 4 << 10
	// commandPacket bounds macros, connect, HELO, MAIL, RCPT and the
	// other commands: addresses and names, a few hundred bytes in practice.
	commandPacket = 64 << 10
	// contentPacket bounds a header or a body chunk. Postfix sends body
	// chunks of at most 65535 bytes and header lines of at most
	// header_size_limit (100 KiB); 1 MiB leaves room for a raised
	// header_size_limit and for MTAs that negotiate 1 MiB chunks.
	contentPacket = 1 << 20
	// bigPacketWait: a packet above freePacket waits at most this long for
	// room in limits.max_packet_memory; then its connection is closed.
	bigPacketWait = 30 * time.Second
)

// packetDataTime: the data of a packet above freePacket must have come
// this long after its length. An MTA writes a packet at once; a client
// that announces a packet and sends nothing holds its share only briefly.
// (A variable for tests.)
var packetDataTime = 5 * time.Second

var errBadPacket = errors.New("milter: packet refused")

// packetLimit is the largest length allowed for packet number n (from 0)
// of a connection, whose command byte is cmd.
func packetLimit(n int, cmd byte) int64 {
	switch {
	case n == 0 && cmd != 'O':
		return 0 // anything but OPTNEG before negotiation
	case cmd == 'L' || cmd == 'B' || cmd == 'E': // header, body, end of body (may carry a chunk)
		return stageLimit(n)
	}
	return min(commandPacket, stageLimit(n))
}

// stageLimit is the largest length allowed for packet number n whatever
// its command.
func stageLimit(n int) int64 {
	if n == 0 {
		return freePacket
	}
	return contentPacket
}

// guardListener wraps every accepted connection in a guardConn, keeps
// accepting through errors such as EMFILE, and closes connections beyond
// twice limits.max_sessions at once.
type guardListener struct {
	net.Listener
	srv *Server
}

// Accept never returns an error but the listener's closing: go-milter's
// Serve returns on any Accept error, and the daemon would end with every
// session in flight. Out of file descriptors (EMFILE, ENFILE), an aborted
// handshake (ECONNABORTED) and the like pass; it retries with a backoff of
// 5 ms doubling to 1 s, as net/http does.
func (l guardListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if err != nil {
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if ok, n := l.srv.acceptLog.allow(); ok {
				l.srv.log.Error("milter accept failed; retrying (if it says too many open files: raise LimitNOFILE)", "err", err.Error(), "retry_in", delay, "suppressed", n)
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		n := l.srv.conns.Add(1)
		if maxS := int64(l.srv.limits.MaxSessions); maxS > 0 && n > 2*maxS {
			// Between max_sessions and twice that, connections are still
			// answered (451 4.3.2 at connect); beyond it even that costs
			// too much.
			l.srv.conns.Add(-1)
			c.Close()
			if env := l.srv.Env(); env != nil {
				env.Metrics.SessionRefused()
			}
			if ok, n := l.srv.refuseLog.allow(); ok {
				l.srv.log.Warn("too many milter connections: closed at accept", "open", 2*maxS, "max_sessions", maxS, "suppressed", n)
			}
			continue
		}
		// TCP_NODELAY needs no call here: Go sets it on every accepted
		// TCP connection, so replies at end of message do not wait for the
		// MTA's delayed ACK (OpenDKIM loses ~40 ms per message that way).
		return newGuardConn(c, l.srv), nil
	}
}

// guardConn sits between the socket and go-milter and follows the packet
// framing (4-byte big-endian length, then the command byte and data).
//
// Reading, it looks at each packet's length and command before handing
// the length on: a zero length (go-milter v0.10.2 panics on it in its own
// goroutine, where no recover can catch it), anything but a small OPTNEG
// before negotiation, or a length above the command's limit closes the
// connection; a packet above freePacket first takes its share of
// limits.max_packet_memory and gives it back when go-milter asks for the
// next packet (it has then processed this one). Reads are buffered:
// go-milter reads every packet with two reads (length, then data), and
// Postfix sends several packets at once.
//
// Writing, it sends a packet's 5-byte header and its data in one write,
// and holds modifications (a DKIM-Signature to insert...) until the reply
// that follows them, so that the end of a message costs one write.
//
// go-milter sets a deadline before every packet it reads or writes and
// clears it after; the guard sets it on the socket only when a read or
// write reaches the socket (most packets are already in the buffer).
type guardConn struct {
	net.Conn
	srv *Server
	br  *bufio.Reader

	// read side: go-milter reads from one goroutine
	packets   int       // packets begun
	remaining int       // bytes of the current packet, header included, not yet handed on
	deadline  time.Time // go-milter's read deadline
	dataBy    time.Time // non-zero: the current packet's data must arrive by then
	applied   time.Time // the read deadline set on the socket
	err       error
	nul       nulScan // NUL bytes inside header values (nulheader.go)

	mu        sync.Mutex // Close may come from another goroutine
	held      int64      // share of the packet budget held by the current packet
	closed    bool
	done      chan struct{} // closed by Close: ends a wait for memory
	closeOnce sync.Once

	// write side
	wmu       sync.Mutex
	out       []byte    // packets not sent yet
	outArr    [256]byte // out's first array: replies and an Authentication-Results fit
	outNeed   int       // data bytes of the last packet in out still to come
	outCmd    byte      // that packet's command
	wdeadline time.Time // go-milter's write deadline
	wapplied  time.Time // the write deadline set on the socket
}

func newGuardConn(c net.Conn, srv *Server) *guardConn {
	g := &guardConn{Conn: c, srv: srv, done: make(chan struct{})}
	g.br = bufio.NewReaderSize(socketReader{g}, freePacket)
	g.out = g.outArr[:0]
	return g
}

// socketReader is what the guard's buffer reads from: the socket, with
// the read deadline now due.
type socketReader struct{ c *guardConn }

func (r socketReader) Read(p []byte) (int, error) {
	c := r.c
	want := c.deadline
	if !c.dataBy.IsZero() {
		want = earliest(want, c.dataBy)
	}
	if !want.Equal(c.applied) {
		if err := c.Conn.SetReadDeadline(want); err != nil {
			return 0, err
		}
		c.applied = want
	}
	return c.Conn.Read(p)
}

func (c *guardConn) Read(p []byte) (int, error) {
	if len(c.nul.inject) > 0 {
		// The marker packet nulheader.go queued after a header packet.
		n := copy(p, c.nul.inject)
		c.nul.inject = c.nul.inject[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.remaining == 0 {
		if err := c.nextPacket(); err != nil {
			c.err = err
			return 0, err
		}
	}
	n, err := c.br.Read(p[:min(len(p), c.remaining)])
	// The 4-byte length prefix is not part of the packet nulScan follows.
	prefix := min(n, max(0, c.remaining-int(c.nul.length)))
	if n > prefix {
		c.nul.scan(p[prefix:n], uint32(c.remaining-prefix))
	}
	c.remaining -= n
	if c.remaining == 0 {
		c.dataBy = time.Time{}
	}
	return n, err
}

// nextPacket checks the header of the next packet (waiting for it) and
// reserves its memory.
func (c *guardConn) nextPacket() error {
	c.release() // go-milter is done with the previous packet
	// The length alone may already be too much for the stage (a flood of
	// bare length prefixes need not wait for a command byte).
	hdr, err := c.br.Peek(4)
	if err != nil {
		return err
	}
	length := int64(binary.BigEndian.Uint32(hdr))
	if limit := stageLimit(c.packets); length > limit {
		c.Close()
		return fmt.Errorf("%w: packet %d from %s: length %d (limit %d)", errBadPacket, c.packets+1, c.RemoteAddr(), length, limit)
	}
	if hdr, err = c.br.Peek(5); err != nil {
		return err
	}
	if limit := packetLimit(c.packets, hdr[4]); length == 0 || length > limit {
		c.Close()
		return fmt.Errorf("%w: packet %d from %s: command %q, length %d (limit %d)", errBadPacket, c.packets+1, c.RemoteAddr(), hdr[4], length, limit)
	}
	if length > freePacket && c.srv.budget != nil {
		if err := c.reserve(length); err != nil {
			c.Close()
			return err
		}
		c.dataBy = time.Now().Add(packetDataTime)
	}
	c.packets++
	c.remaining = 4 + int(length)
	c.nul.start(uint32(length))
	return nil
}

func (c *guardConn) reserve(n int64) error {
	if !c.srv.budget.acquire(n, bigPacketWait, c.done) {
		return fmt.Errorf("%w: no room for a %d-byte packet from %s within %s (limits.max_packet_memory %d in use)", errBadPacket, n, c.RemoteAddr(), bigPacketWait, c.srv.budget.size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.srv.budget.release(n)
		return net.ErrClosed
	}
	c.held = n
	return nil
}

func (c *guardConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held > 0 {
		c.srv.budget.release(c.held)
		c.held = 0
	}
}

// SetReadDeadline keeps go-milter's deadline for the next read from the
// socket (shortened while the data of a large packet is due). Unlike a
// socket's, it does not apply to a read already waiting: go-milter reads
// and sets deadlines in one goroutine.
func (c *guardConn) SetReadDeadline(t time.Time) error {
	c.deadline = t
	return nil
}

// SetWriteDeadline keeps go-milter's deadline for the next write to the
// socket.
func (c *guardConn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wdeadline = t
	return nil
}

func (c *guardConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// Close gives back the connection's memory and its place among the open
// connections.
func (c *guardConn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.release()
		close(c.done)
		c.srv.conns.Add(-1)
	})
	return c.Conn.Close()
}

// modifications are the commands of the packets that change the message
// (SMFIR_ADDRCPT, DELRCPT, REPLBODY, ADDHEADER, CHGHEADER, INSHEADER,
// QUARANTINE, CHGFROM, ADDRCPT_PAR): the MTA acts on them only with the
// reply at end of message that follows.
const modifications = "+-bhmiqe2"

// maxHeld bounds the bytes of modifications held before they are sent.
const maxHeld = 64 << 10

// Write takes go-milter's packets: each comes as a 5-byte header (length
// and command) and then its data, if any. A packet is sent once complete,
// in one write with the modifications held before it; a modification is
// held. Anything that does not follow the framing is sent at once.
func (c *guardConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	switch {
	case c.outNeed == 0 && len(p) == 5:
		c.outNeed, c.outCmd = max(0, int(binary.BigEndian.Uint32(p))-1), p[4]
	case c.outNeed >= len(p) && len(p) > 0:
		c.outNeed -= len(p)
	default:
		c.outNeed = 0
		c.outCmd = 0
	}
	c.out = append(c.out, p...)
	if c.outNeed > 0 || strings.IndexByte(modifications, c.outCmd) >= 0 && len(c.out) < maxHeld {
		return len(p), nil
	}
	if !c.wdeadline.Equal(c.wapplied) {
		if err := c.Conn.SetWriteDeadline(c.wdeadline); err != nil {
			return 0, err
		}
		c.wapplied = c.wdeadline
	}
	_, err := c.Conn.Write(c.out)
	c.out = c.out[:0]
	if cap(c.out) > maxHeld {
		c.out = c.outArr[:0]
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// budget is limits.max_packet_memory: bytes shared by all connections.
// When it is short, the smallest request that fits goes first: an MTA's
// body chunks (64 KiB) get through while clients that announce 1 MiB
// packets and stall wait; a large request may starve, and after
// bigPacketWait its connection is closed.
type budget struct {
	size    int64
	mu      sync.Mutex
	free    int64
	waiters []*budgetWaiter // none of them fits in free
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func newBudget(size int64) *budget {
	if size <= 0 {
		return nil // no limit
	}
	return &budget{size: size, free: size}
}

// acquire takes n bytes, waiting at most wait or until done is closed;
// it reports whether it got them.
func (b *budget) acquire(n int64, wait time.Duration, done <-chan struct{}) bool {
	b.mu.Lock()
	if n > b.size {
		b.mu.Unlock()
		return false
	}
	if b.free >= n {
		b.free -= n
		b.mu.Unlock()
		return true
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.ready:
		return true
	case <-done:
	case <-t.C:
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.free += n
		b.grant()
	default:
		b.waiters = slices.DeleteFunc(b.waiters, func(x *budgetWaiter) bool { return x == w })
	}
	return false
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	b.grant()
}

// grant serves the smallest waiter that fits (the earliest among equals)
// while there is one.
func (b *budget) grant() {
	for {
		best := -1
		for i, w := range b.waiters {
			if w.n <= b.free && (best < 0 || w.n < b.waiters[best].n) {
				best = i
			}
		}
		if best < 0 {
			return
		}
		w := b.waiters[best]
		b.waiters = slices.Delete(b.waiters, best, best+1)
		b.free -= w.n
		close(w.ready)
	}
}

// inUse is the number of bytes handed out.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size - b.free
}

// rateLog lets one log line through per interval and counts the others.
type rateLog struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

const logInterval = 10 * time.Second

// allow reports whether to log now, with the number of lines suppressed
// since the last one.
func (r *rateLog) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Before(r.next) {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.next, r.suppressed = now.Add(logInterval), 0
	return true, n
}
