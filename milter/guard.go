package milter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
)

// maxPacket bounds one milter packet. Postfix sends body chunks of at most
// 65535 bytes and headers of at most header_size_limit (100 KiB); macros and
// recipient lists stay well below this.
const maxPacket = 4 << 20

var errBadPacket = errors.New("milter: invalid packet length")

// guardListener wraps every accepted connection in a guardConn.
type guardListener struct {
	net.Listener
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// Replies at end of message must not wait for the MTA's delayed ACK
		// (Nagle): OpenDKIM loses ~40 ms per message that way.
		_ = tc.SetNoDelay(true)
	}
	return &guardConn{Conn: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

// guardConn sits between the socket and go-milter and follows the packet
// framing (4-byte big-endian length, then the command byte and data).
//
// Reading, it closes the connection on a zero length or one above
// maxPacket: go-milter v0.10.2 panics on a zero-length packet in its own
// goroutine (no recover can catch that) and would allocate up to 512 MiB for
// a large one. Writing, it sends a packet's 5-byte header and its data in
// one writev instead of two small writes. Reads are buffered: go-milter
// reads every packet with two reads (length, then data), and Postfix sends
// several packets at once (macros and command, headers, body chunks).
type guardConn struct {
	net.Conn
	br *bufio.Reader

	// read side
	hdr       [4]byte
	hdrN      int
	remaining uint32
	bad       error
	nul       nulScan // NUL bytes inside header values (nulheader.go)

	// write side
	wmu     sync.Mutex
	pending []byte // a packet header waiting for its data
	wbuf    [5]byte
}

func (c *guardConn) Read(p []byte) (int, error) {
	if len(c.nul.inject) > 0 {
		n := copy(p, c.nul.inject)
		c.nul.inject = c.nul.inject[n:]
		return n, nil
	}
	if c.bad != nil {
		return 0, c.bad
	}
	// One packet at a time (go-milter reads them so anyway), so that a
	// packet nulheader.go injects comes right after the header packet.
	if c.remaining > 0 {
		p = p[:min(uint32(len(p)), c.remaining)]
	} else {
		p = p[:min(len(p), len(c.hdr)-c.hdrN)]
	}
	n, err := c.br.Read(p)
	for i := 0; i < n; {
		if c.remaining > 0 {
			skip := min(c.remaining, uint32(n-i))
			c.nul.scan(p[i:i+int(skip)], c.remaining)
			i += int(skip)
			c.remaining -= skip
			continue
		}
		start := i - c.hdrN // where this header began, if in this read
		c.hdr[c.hdrN] = p[i]
		c.hdrN++
		i++
		if c.hdrN < len(c.hdr) {
			continue
		}
		c.hdrN = 0
		length := binary.BigEndian.Uint32(c.hdr[:])
		if length == 0 || length > maxPacket {
			c.bad = fmt.Errorf("%w %d from %s", errBadPacket, length, c.RemoteAddr())
			c.Conn.Close()
			// Hand over what came before the bad header, never the header.
			if start > 0 {
				return start, nil
			}
			return 0, c.bad
		}
		c.remaining = length
		c.nul.start(length)
	}
	return n, err
}

func (c *guardConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.pending != nil {
		bufs := net.Buffers{c.pending, p}
		c.pending = nil
		n, err := bufs.WriteTo(c.Conn)
		return max(0, int(n)-len(c.wbuf)), err
	}
	// go-milter writes the header (length + command) and then the data.
	if len(p) == len(c.wbuf) && binary.BigEndian.Uint32(p) > 1 {
		copy(c.wbuf[:], p)
		c.pending = c.wbuf[:]
		return len(p), nil
	}
	return c.Conn.Write(p)
}
