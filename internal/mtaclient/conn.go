package mtaclient

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// PostfixMacros are Postfix's default milter_*_macros (3.7): what Postfix
// sends at each stage to a milter that does not ask for its own lists at
// negotiation. A milter that asks gets only what it asked for, per stage.
var PostfixMacros = map[gomilter.MacroStage][]gomilter.MacroName{
	gomilter.StageConnect: {gomilter.MacroMTAFQDN, gomilter.MacroDaemonName, gomilter.MacroDaemonAddr, gomilter.MacroMTAVersion, gomilter.MacroRFC1413AuthInfo},
	gomilter.StageHelo:    {gomilter.MacroTlsVersion, gomilter.MacroCipher, gomilter.MacroCipherBits, gomilter.MacroCertSubject, gomilter.MacroCertIssuer},
	gomilter.StageMail:    {gomilter.MacroQueueId, gomilter.MacroAuthType, gomilter.MacroAuthAuthen, gomilter.MacroAuthAuthor, gomilter.MacroMailAddr, gomilter.MacroMailHost, gomilter.MacroMailMailer},
	gomilter.StageRcpt:    {gomilter.MacroQueueId, gomilter.MacroRcptAddr, gomilter.MacroRcptHost, gomilter.MacroRcptMailer},
	gomilter.StageData:    {gomilter.MacroQueueId},
	gomilter.StageEOH:     {gomilter.MacroQueueId},
	gomilter.StageEOM:     {gomilter.MacroQueueId},
}

// DefaultTimeout is the read and write timeout of NewPostfixClient
// (Postfix's milter_command_timeout is 30 s, milter_content_timeout 300 s).
const DefaultTimeout = 60 * time.Second

// NewPostfixClient is NewClient with Postfix's default macro lists and its
// way of using the socket: every packet leaves in one write (Postfix
// flushes its stream once per command; go-milter's client writes the
// 5-byte packet header and the data separately) and replies are read
// through a buffer. opts are applied after these defaults.
func NewPostfixClient(network, addr string, opts ...gomilter.Option) *gomilter.Client {
	base := []gomilter.Option{
		gomilter.WithDialer(packetDialer{d: &net.Dialer{Timeout: 10 * time.Second}}),
		gomilter.WithReadTimeout(DefaultTimeout),
		gomilter.WithWriteTimeout(DefaultTimeout),
		gomilter.WithoutDefaultMacros(),
	}
	for stage, names := range PostfixMacros {
		base = append(base, gomilter.WithMacroRequest(stage, names))
	}
	return gomilter.NewClient(network, addr, append(base, opts...)...)
}

type packetDialer struct{ d *net.Dialer }

func (p packetDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := p.d.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return &packetConn{Conn: c, r: bufio.NewReaderSize(c, 8192)}, nil
}

// packetConn joins a packet's header and data into one writev and buffers
// reads. go-milter writes a packet as Write(5-byte header) then, if the
// packet has data, Write(data); a header announcing data is held back
// until the data comes.
type packetConn struct {
	net.Conn
	r       *bufio.Reader
	hdr     [5]byte
	pending bool
}

func (c *packetConn) Write(p []byte) (int, error) {
	if c.pending {
		c.pending = false
		bufs := net.Buffers{c.hdr[:], p}
		n, err := bufs.WriteTo(c.Conn)
		return max(0, int(n)-len(c.hdr)), err
	}
	if len(p) == len(c.hdr) && binary.BigEndian.Uint32(p) > 1 {
		copy(c.hdr[:], p)
		c.pending = true
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *packetConn) Read(p []byte) (int, error) {
	if c.pending { // cannot happen with go-milter; never leave a header behind
		c.pending = false
		if _, err := c.Conn.Write(c.hdr[:]); err != nil {
			return 0, err
		}
	}
	return c.r.Read(p)
}

// macroMap implements gomilter.Macros; a missing name is not sent.
type macroMap map[gomilter.MacroName]string

func (m macroMap) Get(name gomilter.MacroName) string { return m[name] }

func (m macroMap) GetEx(name gomilter.MacroName) (string, bool) {
	v, ok := m[name]
	return v, ok
}

func (m macroMap) set(name gomilter.MacroName, value string) {
	if value == "" {
		delete(m, name)
	} else {
		m[name] = value
	}
}

// ErrConnClosed is returned by Conn.Send after the connection failed or
// was closed.
var ErrConnClosed = errors.New("mtaclient: milter connection closed")

// Conn is one milter connection as Postfix keeps it for one SMTP session:
// negotiation, connect and HELO once, then any number of transactions.
// After each transaction it sends SMFIC_ABORT (Postfix's mail_reset does,
// whatever the outcome), and SMFIC_QUIT on Close.
//
// Unlike Send, Conn gives header values to the milter exactly as Postfix
// does: without the first space after the colon unless the milter
// negotiated SMFIP_HDR_LEADSPC; and Result.Headers gets that space back
// on the headers the milter adds or changes. The macros set are those
// Postfix knows ({client_addr}, {client_name}, j, i, {auth_*}, …); which
// of them are sent at each stage is the client's list or the milter's.
//
// A Conn is not safe for concurrent use.
type Conn struct {
	c        *gomilter.Client
	s        *gomilter.ClientSession
	macros   macroMap
	opened   bool
	closed   bool
	inTx     bool    // a transaction was started: ABORT before the next one
	connStop *Result // the milter ended the connection at connect or HELO
	msgs     int
}

// NewConn prepares a connection; it is opened by the first Send.
func NewConn(c *gomilter.Client) *Conn {
	return &Conn{c: c, macros: macroMap{}}
}

// Messages is the number of transactions started on this connection.
func (k *Conn) Messages() int { return k.msgs }

// Open dials the milter, negotiates and sends connect and HELO for m's
// client. Send calls it when needed; calling it first separates the
// connection set-up from the first message (e.g. to time it).
func (k *Conn) Open(m *Message) (*Result, error) {
	if k.closed {
		return nil, ErrConnClosed
	}
	if k.opened {
		return k.connStop, nil
	}
	k.opened = true
	name := m.ClientName
	if name == "" {
		name = "[" + m.ClientIP + "]"
	}
	mac := k.macros
	mac.set(gomilter.MacroMTAFQDN, or(m.MTAName, "mx.example.test"))
	mac.set(gomilter.MacroDaemonName, "smtpd")
	mac.set(gomilter.MacroDaemonAddr, "127.0.0.1")
	mac.set(gomilter.MacroDaemonPort, "25")
	mac.set(gomilter.MacroMTAVersion, "Postfix 3.7.11")
	mac.set(gomilter.MacroClientAddr, m.ClientIP)
	mac.set(gomilter.MacroClientPort, "25000")
	mac.set(gomilter.MacroClientName, strings.Trim(or(m.ClientName, "unknown"), "[]"))
	mac.set(gomilter.MacroClientPTR, strings.Trim(or(m.ClientName, "unknown"), "[]"))
	mac.set(gomilter.MacroClientConnections, "0")
	mac.set(gomilter.MacroRFC1413AuthInfo, strings.Trim(or(m.ClientName, "unknown"), "[]")+" ["+m.ClientIP+"]")
	s, err := k.c.Session(k.macros)
	if err != nil {
		k.closed = true
		return nil, err
	}
	k.s = s
	family := gomilter.FamilyInet
	if strings.Contains(m.ClientIP, ":") {
		family = gomilter.FamilyInet6
	}
	act, err := s.Conn(name, family, 25000, m.ClientIP)
	if err != nil {
		return nil, k.fail(err)
	}
	if act.StopProcessing() {
		k.connStop = &Result{Stage: "connect", Action: act}
		return k.connStop, nil
	}
	if act, err = s.Helo(or(m.HELO, "client.example.test")); err != nil {
		return nil, k.fail(err)
	}
	if act.StopProcessing() {
		k.connStop = &Result{Stage: "helo", Action: act}
	}
	return k.connStop, nil
}

func (k *Conn) fail(err error) error {
	k.closed = true
	if k.s != nil {
		k.s.Close()
	}
	return err
}

// Send runs one transaction. The connection is opened (with m's client
// name, IP and HELO) on the first call; later messages reuse it, and their
// client fields are ignored. If the milter ended the connection at connect
// or HELO, every message gets that result, as Postfix applies it to every
// transaction of the session. After an error the Conn is closed.
func (k *Conn) Send(m *Message) (*Result, error) {
	if stop, err := k.Open(m); err != nil || stop != nil {
		if stop != nil {
			k.msgs++
			return &Result{Stage: stop.Stage, Action: stop.Action}, nil
		}
		return nil, err
	}
	if k.inTx {
		if err := k.s.Abort(nil); err != nil {
			return nil, k.fail(err)
		}
	}
	k.inTx = true
	k.msgs++
	mac := k.macros
	mac.set(gomilter.MacroQueueId, or(m.QueueID, "4TESTQID"+strconv.Itoa(k.msgs)))
	auth := "PLAIN"
	if m.AuthUser == "" {
		auth = ""
	}
	mac.set(gomilter.MacroAuthType, auth)
	mac.set(gomilter.MacroAuthAuthen, m.AuthUser)
	mac.set(gomilter.MacroMailAddr, m.From)
	_, host, _ := strings.Cut(m.From, "@")
	mac.set(gomilter.MacroMailHost, host)
	mac.set(gomilter.MacroMailMailer, "smtp")
	mac.set(gomilter.MacroRcptMailer, "smtp")
	res, err := runTx(k.s, m, true, func(rcpt string) {
		mac.set(gomilter.MacroRcptAddr, rcpt)
		_, host, _ := strings.Cut(rcpt, "@")
		mac.set(gomilter.MacroRcptHost, host)
	})
	if err != nil {
		return nil, k.fail(err)
	}
	return res, nil
}

// Close ends the connection as Postfix does at the end of an SMTP session:
// SMFIC_ABORT if a transaction was started, then SMFIC_QUIT.
func (k *Conn) Close() error {
	if k.closed {
		return nil
	}
	k.closed = true
	if k.s == nil {
		return nil
	}
	if k.inTx && k.connStop == nil {
		if err := k.s.Abort(nil); err != nil {
			k.s.Close()
			return err
		}
	}
	return k.s.Close()
}
