package milter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vouch/internal/mtaclient"
)

// packet is one milter packet: length, command, data.
func packet(cmd byte, data string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(b, cmd), data...)
}

// header is a packet header announcing length bytes (command included).
func header(length uint32, cmd byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, length), cmd)
}

// optneg is what Postfix sends first: version 6, all actions, all protocol steps.
var optneg = packet('O', "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff")

// postfixSession is a milter session as Postfix sends it, up to QUIT,
// with a Subject of subject bytes and a first body chunk of chunk bytes.
func postfixSession(subject, chunk int) []byte {
	var b []byte
	for _, p := range [][]byte{
		optneg,
		packet('D', "Cj\x00mx.example.test\x00{daemon_name}\x00smtpd\x00"),
		packet('C', "[10.0.0.1]\x004\x00\x30\x39\x0010.0.0.1\x00"),
		packet('H', "client.example.test\x00"),
		packet('M', "<a@example.test>\x00"),
		packet('R', "<b@remote.test>\x00"),
		packet('L', "Subject\x00 "+strings.Repeat("x", subject)+"\x00"),
		packet('L', "From\x00 a@example.test\x00"),
		packet('N', ""),
		packet('B', strings.Repeat("y", chunk)),
		packet('B', "last\r\n"),
		packet('E', ""),
		packet('Q', ""),
	} {
		b = append(b, p...)
	}
	return b
}

// streamConn is a net.Conn whose other side sent in and then closed.
type streamConn struct {
	r      io.Reader
	closed bool
}

func (c *streamConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(p)
}
func (c *streamConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *streamConn) Close() error                     { c.closed = true; return nil }
func (c *streamConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *streamConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// readLikeGoMilter reads through the guard as wire.ReadPacket does (the
// 4-byte length, then the rest in one read) and returns what came through.
func readLikeGoMilter(in []byte, srv *Server) ([]byte, *guardConn, error) {
	srv.conns.Add(1)
	g := newGuardConn(&streamConn{r: iotestHalf{bytes.NewReader(in)}}, srv)
	var out []byte
	for {
		var l [4]byte
		n, err := io.ReadFull(g, l[:])
		out = append(out, l[:n]...)
		if err != nil {
			return out, g, err
		}
		data := make([]byte, binary.BigEndian.Uint32(l[:]))
		n, err = io.ReadFull(g, data)
		out = append(out, data[:n]...)
		if err != nil {
			return out, g, err
		}
	}
}

// iotestHalf returns at most half of what is asked (at least one byte), so
// that packets arrive in pieces, as they may from a socket.
type iotestHalf struct{ r io.Reader }

func (h iotestHalf) Read(p []byte) (int, error) {
	return h.r.Read(p[:max(1, len(p)/2)])
}

func TestGuardFraming(t *testing.T) {
	session := postfixSession(200<<10, 65535) // a 200 KiB header line, a full body chunk
	tests := []struct {
		name string
		in   []byte
		pass int  // bytes handed on
		bad  bool // refused (not just the end of the stream)
	}{
		{"postfix session", session, len(session), false},
		{"4 MiB length before OPTNEG", header(4<<20, 'O'), 0, true},
		{"4 MiB length alone", []byte{0, 0x40, 0, 0}, 0, true}, // refused without waiting for the command byte
		{"zero length first", []byte{0, 0, 0, 0, 'O'}, 0, true},
		{"OPTNEG above 4 KiB", header(4<<10+1, 'O'), 0, true},
		{"another command first", packet('C', "x"), 0, true},
		{"zero length after OPTNEG", append(append([]byte{}, optneg...), 0, 0, 0, 0, 'C'), len(optneg), true},
		{"4 MiB header after OPTNEG", append(append([]byte{}, optneg...), header(4<<20, 'L')...), len(optneg), true},
		{"1 MiB header after OPTNEG", append(append([]byte{}, optneg...), header(1<<20, 'L')...), len(optneg) + 5, false},
		{"1 MiB macro after OPTNEG", append(append([]byte{}, optneg...), header(1<<20, 'D')...), len(optneg), true},
		{"truncated header", append(append([]byte{}, optneg...), 0, 0), len(optneg), false},
		{"length without command", append(append([]byte{}, optneg...), 0, 0, 1, 0), len(optneg), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{budget: newBudget(2 << 20)}
			out, g, err := readLikeGoMilter(tc.in, srv)
			if !bytes.Equal(out, tc.in[:tc.pass]) {
				t.Fatalf("handed on %d bytes, want the first %d", len(out), tc.pass)
			}
			if got := errors.Is(err, errBadPacket); got != tc.bad {
				t.Fatalf("err = %v, want refused: %v", err, tc.bad)
			}
			if tc.bad && srv.conns.Load() != 0 {
				t.Fatal("a refused connection is still counted")
			}
			g.Close()
			if srv.conns.Load() != 0 || srv.budget.inUse() != 0 {
				t.Fatalf("after close: %d connections, %d bytes of budget in use", srv.conns.Load(), srv.budget.inUse())
			}
		})
	}
}

// guardReference is what the guard must hand on from in: whole packets
// and the valid beginning of the last one, up to the first packet whose
// length is refused; a packet is handed on once its command byte is there.
// In a header packet ("L" name NUL value NUL) a NUL inside the value
// becomes a space, and a complete such packet is followed by the marker
// header packet (nulheader.go).
func guardReference(in []byte) []byte {
	var out []byte
	n, pos := 0, 0
	for len(in)-pos >= 5 {
		length := int64(binary.BigEndian.Uint32(in[pos:]))
		if length == 0 || length > packetLimit(n, in[pos+4]) {
			break
		}
		n++
		end := min(len(in), pos+4+int(length))
		pkt := append([]byte(nil), in[pos:end]...)
		if pkt[4] == 'L' {
			last := 4 + int(length) - 1 // the final NUL, if it came
			replaced := false
			if i := bytes.IndexByte(pkt[5:], 0); i >= 0 {
				for j := 5 + i + 1; j < len(pkt) && j < last; j++ {
					if pkt[j] == 0 {
						pkt[j], replaced = ' ', true
					}
				}
			}
			if replaced && end == pos+4+int(length) {
				marker := "L" + nulHeaderName + "\x00\x00"
				pkt = binary.BigEndian.AppendUint32(pkt, uint32(len(marker)))
				pkt = append(pkt, marker...)
			}
		}
		out = append(out, pkt...)
		pos = end
	}
	return out
}

// FuzzGuardFraming: for any byte stream, the guard hands on exactly the
// reference's prefix of it; in what it hands on, no packet header has a
// length of 0 or above its command's limit (a valid stream comes through
// byte for byte); and closing gives all memory back.
func FuzzGuardFraming(f *testing.F) {
	f.Add(postfixSession(10, 10))
	f.Add(postfixSession(5000, 6000)) // both above freePacket
	f.Add(optneg)
	f.Add(header(4<<20, 'O'))
	f.Add([]byte{0, 0, 0, 0})
	f.Add(append(append([]byte{}, optneg...), header(5000, 'B')...))
	f.Add(append(append(append([]byte{}, optneg...), packet('B', strings.Repeat("z", 5000))...), packet('Q', "")...))
	f.Add(append(append([]byte{}, optneg...), header(1<<20+1, 'L')...))
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := &Server{budget: newBudget(1 << 20)}
		out, g, err := readLikeGoMilter(in, srv)
		if want := guardReference(in); !bytes.Equal(out, want) {
			t.Logf("got  %q\nwant %q", out, want)
			t.Fatalf("handed on %d bytes, the reference %d (err %v)", len(out), len(want), err)
		}
		for n, pos := 0, 0; pos+4 <= len(out); n++ {
			length := int64(binary.BigEndian.Uint32(out[pos:]))
			if pos+5 > len(out) || length == 0 || length > packetLimit(n, out[pos+4]) {
				t.Fatalf("packet %d handed on with length %d", n, length)
			}
			pos += 4 + int(length)
		}
		g.Close()
		if srv.conns.Load() != 0 || srv.budget.inUse() != 0 {
			t.Fatalf("after close: %d connections, %d bytes of budget in use", srv.conns.Load(), srv.budget.inUse())
		}
	})
}

func TestPacketLimit(t *testing.T) {
	tests := []struct {
		n    int
		cmd  byte
		want int64
	}{
		{0, 'O', 4 << 10},
		{0, 'L', 0},
		{0, 'D', 0},
		{1, 'D', 64 << 10},
		{1, 'C', 64 << 10},
		{5, 'R', 64 << 10},
		{5, 'L', 1 << 20},
		{5, 'B', 1 << 20},
		{5, 'E', 1 << 20},
		{5, 'O', 64 << 10},
	}
	for _, tc := range tests {
		if got := packetLimit(tc.n, tc.cmd); got != tc.want {
			t.Errorf("packetLimit(%d, %q) = %d, want %d", tc.n, tc.cmd, got, tc.want)
		}
	}
}

func TestBudget(t *testing.T) {
	never := make(chan struct{})
	b := newBudget(100)
	if !b.acquire(60, time.Second, never) || !b.acquire(40, time.Second, never) {
		t.Fatal("room for 60+40 of 100")
	}
	if b.acquire(1, 20*time.Millisecond, never) {
		t.Fatal("got a byte of a full budget")
	}
	if b.acquire(101, time.Second, never) {
		t.Fatal("got more than the whole budget")
	}
	// The smallest request that fits goes first: a waiting 50 lets a
	// later 10 pass; among equals, the earlier one.
	order := make(chan int64, 3)
	var wg sync.WaitGroup
	for i, n := range []int64{50, 10, 10} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b.acquire(n, 5*time.Second, never) {
				order <- int64(i)*1000 + n
			}
		}()
		waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == i+1 })
	}
	b.release(15) // room for one 10: the first of them
	if got := <-order; got != 1010 {
		t.Fatalf("served %d first, want the first 10 (1010)", got)
	}
	b.release(45) // 50 free: the other 10 and not the 50 (40 left)
	if got := <-order; got != 2010 {
		t.Fatalf("served %d second, want the second 10 (2010)", got)
	}
	b.release(10)
	if got := <-order; got != 50 {
		t.Fatalf("served %d last, want the 50", got)
	}
	wg.Wait()
	if b.inUse() != 100 {
		t.Fatalf("%d in use, want 100", b.inUse())
	}
	// A closed connection stops waiting and leaves nothing behind.
	done := make(chan struct{})
	go func() { time.Sleep(10 * time.Millisecond); close(done) }()
	if b.acquire(41, time.Minute, done) {
		t.Fatal("got 41 of a full budget")
	}
	b.release(100)
	if b.inUse() != 0 || len(b.waiters) != 0 {
		t.Fatalf("%d in use, %d waiting", b.inUse(), len(b.waiters))
	}
}

// flakyListener fails Accept with err the first n times.
type flakyListener struct {
	net.Listener
	mu  sync.Mutex
	n   int
	err error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestAcceptErrorsAreRetried: go-milter's Serve returns on any Accept
// error; out of descriptors and the like, vouch logs (once) and keeps
// serving.
func TestAcceptErrorsAreRetried(t *testing.T) {
	tb := newTestbed(t, nil)
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED} {
		t.Run(errno.Error(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			fl := &flakyListener{Listener: ln, n: 4, err: &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{errno}}}
			tb.srv.acceptLog = rateLog{}
			logged := len(tb.logs.String())
			served := make(chan error, 1)
			go func() { served <- tb.srv.Serve(fl) }()
			headers, body := mtaclient.Split([]byte(rawMessage("alice@example.test", "", "x\n")))
			r, err := mtaclient.Send(mtaclient.NewClient("tcp", ln.Addr().String()), &mtaclient.Message{ClientIP: "10.0.0.1", From: "a@example.test", Headers: headers, Body: strings.NewReader(string(body))})
			if err != nil || !r.Accepted() {
				t.Fatalf("after %s: %v %+v", errno, err, r)
			}
			logs := tb.logs.String()[logged:]
			if n := strings.Count(logs, "milter accept failed"); n != 1 || !strings.Contains(logs, errno.Error()) {
				t.Fatalf("%d lines on accept errors, want one (rate-limited) with %q:\n%s", n, errno.Error(), logs)
			}
			select {
			case err := <-served:
				t.Fatalf("Serve returned: %v", err)
			default:
			}
			ln.Close()
			if err := <-served; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Serve after the listener closed: %v", err)
			}
		})
	}
}

// osSyscallError is an *os.SyscallError as net returns it ("accept4: ...").
type osSyscallError struct{ errno syscall.Errno }

func (e *osSyscallError) Error() string { return "accept4: " + e.errno.Error() }
func (e *osSyscallError) Unwrap() error { return e.errno }

// TestLengthPrefixFlood: connections that send a 4 MiB length before
// negotiating are closed without go-milter allocating it (it allocates a
// packet's length as soon as it reads it), and the daemon goes on serving.
func TestLengthPrefixFlood(t *testing.T) {
	tb := newTestbed(t, nil)
	const conns = 50
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	closed := make(chan bool, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", tb.addr)
			if err != nil {
				closed <- false
				return
			}
			defer c.Close()
			c.Write(header(4<<20, 'O')[:4]) // the length alone
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(make([]byte, 1))
			closed <- err == io.EOF || errors.Is(err, syscall.ECONNRESET)
		}()
	}
	wg.Wait()
	close(closed)
	for ok := range closed {
		if !ok {
			t.Fatal("a flooding connection was not closed by the milter")
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("%d connections with a 4 MiB length prefix: %d MiB allocated (want less than one prefix)", conns, grew>>20)
	}
	headers, body := mtaclient.Split([]byte(rawMessage("alice@example.test", "", "x\n")))
	if r := tb.send(t, &mtaclient.Message{ClientIP: "10.0.0.1", From: "a@example.test", Headers: headers, Body: strings.NewReader(string(body))}); !r.Accepted() {
		t.Fatal("not served after the flood")
	}
}

// TestSmallPacketMemory: with the smallest max_packet_memory (1 MiB),
// concurrent sessions with long header lines and large bodies wait for
// their turn and are all signed.
func TestSmallPacketMemory(t *testing.T) {
	tb := newTestbedLimits(t, nil, Limits{ReadTimeout: time.Minute, PacketMemory: 1 << 20})
	long := "X-Long: " + strings.Repeat("a", 200<<10) + "\n"
	headers, _ := mtaclient.Split([]byte(rawMessage("alice@example.test", long, "")))
	var wg sync.WaitGroup
	errs := make(chan string, 6)
	client := mtaclient.NewPostfixClient("tcp", tb.addr) // whole packets, 60 s timeouts
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := mtaclient.Send(client, &mtaclient.Message{ClientIP: "10.0.0.1", From: "a@example.test", Headers: headers, Body: mtaclient.Lines(1 << 20)})
			if err != nil || !r.Accepted() || countHeaders(r.Headers, "DKIM-Signature") != 1 {
				errs <- fmt.Sprintf("not signed: %v %+v", err, r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("%s\n%s", e, tb.logs.String())
	}
	if tb.srv.budget.inUse() != 0 {
		t.Fatalf("%d bytes of the packet budget still held", tb.srv.budget.inUse())
	}
}

func countHeaders(h []mtaclient.Header, name string) int {
	n := 0
	for _, x := range h {
		if strings.EqualFold(x.Name, name) {
			n++
		}
	}
	return n
}

// TestSessionsCountFromAccept: a connection counts against max_sessions
// from accept, before it negotiates; beyond twice max_sessions a
// connection is closed at once.
func TestSessionsCountFromAccept(t *testing.T) {
	tb := newTestbedLimits(t, nil, Limits{ReadTimeout: time.Minute, MaxSessions: 1})
	// An idle connection (go-milter closes it after 1 s without OPTNEG).
	idle, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	r := tb.send(t, &mtaclient.Message{ClientIP: "10.0.0.1", From: "a@example.test"})
	if r.Accepted() || r.Action.SMTPCode != 451 || !strings.Contains(r.Action.SMTPReply, "4.3.2") {
		t.Fatalf("with an unnegotiated connection open and max_sessions 1: stage %q %+v", r.Stage, r.Action)
	}
	// The session's connection is closed; then two open: the third is one too many.
	waitFor(t, func() bool { return tb.srv.Sessions() == 1 })
	second, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitFor(t, func() bool { return tb.srv.Sessions() == 2 })
	third, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := third.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("third connection with max_sessions 1: %v, want closed at once", err)
	}
	waitFor(t, func() bool { return strings.Contains(tb.logs.String(), "closed at accept") })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
	}
}

// TestLargePacketDataIsDue: a client that announces a large packet and
// sends no data loses the connection after packetDataTime, not after
// go-milter's read timeout, and its share of the budget comes back.
func TestLargePacketDataIsDue(t *testing.T) {
	defer func(d time.Duration) { packetDataTime = d }(packetDataTime)
	packetDataTime = 100 * time.Millisecond
	srv := &Server{budget: newBudget(1 << 20)}
	srv.conns.Add(1)
	client, server := net.Pipe()
	defer client.Close()
	g := newGuardConn(server, srv)
	go client.Write(append(append([]byte{}, optneg...), header(60000, 'B')...))
	g.SetReadDeadline(time.Now().Add(time.Minute)) // go-milter's read_timeout
	if _, err := io.ReadFull(g, make([]byte, len(optneg))); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(g, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if srv.budget.inUse() != 60000 {
		t.Fatalf("%d bytes of budget in use, want 60000", srv.budget.inUse())
	}
	start := time.Now()
	_, err := io.ReadFull(g, make([]byte, 60000))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) > 10*time.Second {
		t.Fatalf("after %s: %v, want a timeout after %s", time.Since(start), err, packetDataTime)
	}
	g.Close()
	if srv.budget.inUse() != 0 || srv.conns.Load() != 0 {
		t.Fatalf("after close: %d bytes in use, %d connections", srv.budget.inUse(), srv.conns.Load())
	}
}

// socketOps counts what reaches a socket under the guard.
type socketOps struct {
	mu                                    sync.Mutex
	writes, reads, wDeadlines, rDeadlines int
	wrote                                 [][]byte
	undated                               int // writes without a write deadline
	wd                                    time.Time
}

type countingConn struct {
	net.Conn
	ops *socketOps
}

func (c countingConn) Write(p []byte) (int, error) {
	c.ops.mu.Lock()
	c.ops.writes++
	c.ops.wrote = append(c.ops.wrote, append([]byte{}, p...))
	if c.ops.wd.IsZero() {
		c.ops.undated++
	}
	c.ops.mu.Unlock()
	return c.Conn.Write(p)
}

func (c countingConn) Read(p []byte) (int, error) {
	c.ops.mu.Lock()
	c.ops.reads++
	c.ops.mu.Unlock()
	return c.Conn.Read(p)
}

func (c countingConn) SetWriteDeadline(t time.Time) error {
	c.ops.mu.Lock()
	c.ops.wDeadlines++
	c.ops.wd = t
	c.ops.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c countingConn) SetReadDeadline(t time.Time) error {
	c.ops.mu.Lock()
	c.ops.rDeadlines++
	c.ops.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

type countingListener struct {
	net.Listener
	ops *socketOps
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.ops}, nil
}

// TestGuardSocketOps: a signed message costs one write per reply the MTA
// waits for (negotiation, connect, HELO, MAIL, end of message with the
// DKIM-Signature insertion in the same write), each under the write
// timeout, and deadlines are set only before a read or write that
// reaches the socket (go-milter sets and clears one around every packet).
func TestGuardSocketOps(t *testing.T) {
	tb := newTestbed(t, nil)
	ops := &socketOps{}
	srv := NewServer(tb.srv.Env(), Limits{ReadTimeout: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(countingListener{ln, ops})
	defer srv.Shutdown(t.Context())
	headers, body := mtaclient.Split([]byte(rawMessage("alice@example.test", "", "Hello\r\n")))
	r, err := mtaclient.Send(mtaclient.NewClient("tcp", ln.Addr().String()),
		&mtaclient.Message{ClientIP: "10.1.2.3", From: "alice@example.test", Headers: headers, Body: strings.NewReader(string(body))})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Accepted() || len(r.Mods) != 1 || r.Mods[0].HeaderName != "DKIM-Signature" {
		t.Fatalf("stage %q %+v, modifications %+v", r.Stage, r.Action, r.Mods)
	}
	waitFor(t, func() bool { return srv.Sessions() == 0 })
	ops.mu.Lock()
	defer ops.mu.Unlock()
	if ops.writes != 5 || ops.undated != 0 {
		t.Errorf("%d writes (%d without a deadline), want 5 with one", ops.writes, ops.undated)
	}
	if last := ops.wrote[len(ops.wrote)-1]; len(last) < 10 || last[4] != 'i' || last[len(last)-1] != 'a' {
		t.Errorf("last write %q, want the insertion and the accept", last)
	}
	if ops.wDeadlines > ops.writes || ops.rDeadlines > ops.reads {
		t.Errorf("%d write deadlines for %d writes, %d read deadlines for %d reads", ops.wDeadlines, ops.writes, ops.rDeadlines, ops.reads)
	}
}

// TestGuardWrite: packets written as go-milter does (header, then data)
// reach the socket whole; modifications wait for the packet after them;
// progress and replies go at once.
func TestGuardWrite(t *testing.T) {
	insert := packet('i', "\x00\x00\x00\x01DKIM-Signature\x00 v=1\x00")
	tests := []struct {
		name    string
		packets [][]byte
		want    []string // socket writes
	}{
		{"reply", [][]byte{packet('c', "")}, []string{"\x00\x00\x00\x01c"}},
		{"negotiation", [][]byte{packet('O', "123456789012")}, []string{string(packet('O', "123456789012"))}},
		{"insert then accept", [][]byte{insert, packet('a', "")}, []string{string(insert) + "\x00\x00\x00\x01a"}},
		{"two changes then a reply code", [][]byte{packet('m', "x"), packet('h', "y"), packet('y', "550 5.7.1 no")},
			[]string{string(packet('m', "x")) + string(packet('h', "y")) + string(packet('y', "550 5.7.1 no"))}},
		{"progress goes at once", [][]byte{packet('p', ""), packet('p', "")}, []string{"\x00\x00\x00\x01p", "\x00\x00\x00\x01p"}},
		{"held change", [][]byte{insert}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := &socketOps{}
			srv := &Server{}
			srv.conns.Add(1)
			client, server := net.Pipe()
			defer client.Close()
			go io.Copy(io.Discard, client)
			g := newGuardConn(countingConn{server, ops}, srv)
			defer g.Close()
			for _, p := range tc.packets {
				g.SetWriteDeadline(time.Now().Add(time.Minute))
				for _, part := range [][]byte{p[:5], p[5:]} {
					if len(part) == 0 {
						continue
					}
					if n, err := g.Write(part); n != len(part) || err != nil {
						t.Fatalf("Write = %d, %v", n, err)
					}
				}
				g.SetWriteDeadline(time.Time{})
			}
			var got []string
			for _, w := range ops.wrote {
				got = append(got, string(w))
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) || ops.undated != 0 {
				t.Fatalf("socket writes %q (%d without a deadline), want %q", got, ops.undated, tc.want)
			}
		})
	}
}

// TestReadTimeoutClosesIdleConnection: limits.read_timeout still reaches
// the socket (the guard sets go-milter's deadline only when a read needs
// the socket): a negotiated connection that sends nothing more is closed
// after it, and a client that keeps talking is not.
func TestReadTimeoutClosesIdleConnection(t *testing.T) {
	tb := newTestbedLimits(t, nil, Limits{ReadTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(optneg); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [4]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, binary.BigEndian.Uint32(l[:]))); err != nil {
		t.Fatal(err)
	}
	// Talking: a macro packet (no reply) every 100 ms keeps it open.
	for range 6 {
		time.Sleep(100 * time.Millisecond)
		if _, err := c.Write(packet('D', "Cj\x00mx.example.test\x00")); err != nil {
			t.Fatalf("closed while the client was talking: %v", err)
		}
	}
	start := time.Now()
	n, err := c.Read(make([]byte, 1))
	if el := time.Since(start); err != io.EOF || el < 200*time.Millisecond || el > 3*time.Second {
		t.Fatalf("idle connection: read %d, %v after %s; want EOF after the 300ms read timeout", n, err, el)
	}
}
