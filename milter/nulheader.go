package milter

import "encoding/binary"

// A header packet is "L" name NUL value NUL. A NUL inside the value (an
// MTA other than Postfix, or a client talking to the socket, can send one)
// makes go-milter v0.10.2 see three strings and drop the connection
// without a reply. guardConn turns such NULs into spaces, so that go-milter
// reads a well-formed header, and right after the packet hands go-milter
// one more header packet whose name, nulHeaderName, no MTA can send (a
// field name never contains ":"): the session refuses the message with a
// reply at end of message. Header packets get no reply (OptNoHeaderReply),
// so the extra packet does not upset the conversation with the MTA.
const nulHeaderName = "vouch:nul"

// nulScan follows the packet being read through the guard.
type nulScan struct {
	length    uint32 // packet length, command included
	header    bool   // an "L" packet
	nameEnded bool   // its first NUL has passed
	found     bool   // a NUL inside its value was replaced
	inject    []byte // the packet to hand over next
}

// start begins a packet of length bytes (command included).
func (n *nulScan) start(length uint32) {
	*n = nulScan{length: length, inject: n.inject}
}

// scan looks at the next bytes of the packet (remaining bytes were left
// before them) and replaces NULs inside a header value.
func (n *nulScan) scan(b []byte, remaining uint32) {
	if n.length == remaining && len(b) > 0 {
		n.header = b[0] == 'L' // the command byte
	}
	if !n.header {
		// Body chunks and every other packet: no per-byte work on the
		// hot path.
		return
	}
	for j := range b {
		pos := n.length - remaining + uint32(j)
		switch {
		case pos == 0 || b[j] != 0:
		case !n.nameEnded:
			n.nameEnded = true
		case pos < n.length-1: // not the final NUL
			b[j] = ' '
			n.found = true
		}
	}
	if n.found && remaining == uint32(len(b)) {
		// The packet ends here: queue the marker header.
		data := "L" + nulHeaderName + "\x00\x00"
		n.inject = binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		n.inject = append(n.inject, data...)
		n.found = false
	}
}
