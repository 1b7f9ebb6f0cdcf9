// Package mtaclient plays the MTA side of the milter protocol the way
// Postfix does, for tests and the load tool: protocol 6, the macros
// Postfix sends at each stage, header values with their leading space and
// bare-LF folding (SMFIP_HDR_LEADSPC), CRLF body chunks of at most 64 KiB.
package mtaclient

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"

	gomilter "github.com/d--j/go-milter"
)

// Header is one header field: name and the raw value after the colon.
type Header struct {
	Name, Value string
}

// Message is one SMTP transaction as the MTA hands it to the milter.
type Message struct {
	ClientName string // the MTA's name for the client; "" means "[ip]"
	ClientIP   string
	HELO       string // "" sends client.example.test
	From       string // envelope sender without <>
	Rcpts      []string
	AuthUser   string // SASL login; "" when not authenticated
	QueueID    string
	MTAName    string // macro j
	Headers    []Header
	Body       io.Reader // CRLF line ends
}

// Result is what the milter answered.
type Result struct {
	Stage   string // where the milter stopped the transaction, "" if it reached the end
	Action  *gomilter.Action
	Mods    []gomilter.ModifyAction
	Headers []Header // the headers after the milter's changes, as Postfix would store them
}

// Accepted reports whether the message was accepted.
func (r *Result) Accepted() bool {
	return r.Stage == "" && r.Action != nil && (r.Action.Type == gomilter.ActionAccept || r.Action.Type == gomilter.ActionContinue)
}

// NewClient connects like Postfix does (all v6 actions and protocol steps).
func NewClient(network, addr string) *gomilter.Client {
	return gomilter.NewClient(network, addr)
}

// Send runs one message through a new milter session.
func Send(c *gomilter.Client, m *Message) (*Result, error) {
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroMTAFQDN, or(m.MTAName, "mx.example.test"))
	macros.Set(gomilter.MacroDaemonName, "smtpd")
	macros.Set(gomilter.MacroClientAddr, m.ClientIP)
	macros.Set(gomilter.MacroQueueId, or(m.QueueID, "4TESTQID"))
	if m.AuthUser != "" {
		macros.Set(gomilter.MacroAuthType, "PLAIN")
		macros.Set(gomilter.MacroAuthAuthen, m.AuthUser)
	}
	s, err := c.Session(macros)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return run(s, m)
}

func run(s *gomilter.ClientSession, m *Message) (*Result, error) {
	name := m.ClientName
	if name == "" {
		name = "[" + m.ClientIP + "]"
	}
	family := gomilter.FamilyInet
	if strings.Contains(m.ClientIP, ":") {
		family = gomilter.FamilyInet6
	}
	act, err := s.Conn(name, family, 25000, m.ClientIP)
	if err != nil {
		return nil, err
	}
	if act.StopProcessing() {
		return &Result{Stage: "connect", Action: act}, nil
	}
	// go-milter's client needs a HELO before MAIL.
	if act, err = s.Helo(or(m.HELO, "client.example.test")); err != nil {
		return nil, err
	}
	if act.StopProcessing() {
		return &Result{Stage: "helo", Action: act}, nil
	}
	return runTx(s, m, false, nil)
}

// chunkPool holds body buffers: Postfix sends the body in chunks of at
// most 65535 bytes.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 65535); return &b }}

// runTx runs one transaction, MAIL to end of message. With postfix set,
// header values lose their first space unless the milter negotiated
// SMFIP_HDR_LEADSPC, and Postfix's space is put back in front of the
// values of headers the milter adds or changes (milter8.c); onRcpt, if
// set, is called before each recipient (to set its macros).
func runTx(s *gomilter.ClientSession, m *Message, postfix bool, onRcpt func(string)) (*Result, error) {
	res := &Result{}
	stop := func(stage string, act *gomilter.Action) (*Result, error) {
		res.Action = act
		if act.Type == gomilter.ActionAccept {
			// An accept before the end of the message ends the milter's
			// part: Postfix delivers the message unchanged.
			res.Headers = m.Headers
			return res, nil
		}
		res.Stage = stage
		return res, nil
	}
	act, err := s.Mail(m.From, "")
	if err != nil {
		return nil, err
	}
	if act.StopProcessing() {
		return stop("mail", act)
	}
	rcpts := m.Rcpts
	if len(rcpts) == 0 {
		rcpts = []string{"user@example.test"}
	}
	for _, r := range rcpts {
		if onRcpt != nil {
			onRcpt(r)
		}
		if act, err = s.Rcpt(r, ""); err != nil {
			return nil, err
		}
		if act.StopProcessing() {
			return stop("rcpt", act)
		}
	}
	if act, err = s.DataStart(); err != nil {
		return nil, err
	}
	if act.StopProcessing() {
		return stop("data", act)
	}
	eatSpace := postfix && !s.ProtocolOption(gomilter.OptHeaderLeadingSpace)
	for _, h := range m.Headers {
		value := h.Value
		if eatSpace && strings.HasPrefix(value, " ") {
			value = value[1:] // "Sendmail by default eats one space (not tab) after the colon"
		}
		if act, err = s.HeaderField(h.Name, value, nil); err != nil {
			return nil, err
		}
		if act.StopProcessing() {
			return stop("header", act)
		}
	}
	if act, err = s.HeaderEnd(); err != nil {
		return nil, err
	}
	if act.StopProcessing() {
		return stop("eoh", act)
	}
	body := m.Body
	if body == nil {
		body = strings.NewReader("")
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	sent := false
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 || !sent && rerr != nil {
			// go-milter's client needs one chunk even for an empty body.
			sent = true
			if act, err = s.BodyChunk(buf[:n]); err != nil {
				return nil, err
			}
			if act.StopProcessing() {
				return stop("body", act)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, rerr
		}
	}
	mods, act, err := s.End()
	if err != nil {
		return nil, err
	}
	res.Mods, res.Action = mods, act
	applied := mods
	if eatSpace {
		applied = make([]gomilter.ModifyAction, len(mods))
		for i, md := range mods {
			switch md.Type {
			case gomilter.ActionAddHeader, gomilter.ActionInsertHeader, gomilter.ActionChangeHeader:
				if md.HeaderValue != "" {
					md.HeaderValue = " " + md.HeaderValue
				}
			}
			applied[i] = md
		}
	}
	res.Headers = Apply(m.Headers, applied)
	if act.StopProcessing() && act.Type != gomilter.ActionAccept {
		res.Stage = "eom"
	}
	return res, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Apply performs header modifications the way Postfix does: insert
// indexes are 0-based over the headers the milter saw (Postfix's own
// Received header, which milters never see, is left out here), change
// indexes are 1-based per name and an empty value deletes.
func Apply(headers []Header, mods []gomilter.ModifyAction) []Header {
	out := append([]Header(nil), headers...)
	for _, m := range mods {
		switch m.Type {
		case gomilter.ActionAddHeader:
			out = append(out, Header{m.HeaderName, m.HeaderValue})
		case gomilter.ActionInsertHeader:
			i := int(m.HeaderIndex)
			// Postfix puts index 0 above its own Received header and 1
			// just below it; without that header both mean the top.
			i = max(0, min(i-1, len(out)))
			out = append(out[:i], append([]Header{{m.HeaderName, m.HeaderValue}}, out[i:]...)...)
		case gomilter.ActionChangeHeader:
			n := 0
			for j, h := range out {
				if strings.EqualFold(h.Name, m.HeaderName) {
					n++
					if n == int(m.HeaderIndex) {
						if m.HeaderValue == "" {
							out = append(out[:j], out[j+1:]...)
						} else {
							out[j].Value = m.HeaderValue
						}
						break
					}
				}
			}
		}
	}
	return out
}

// Split parses a message into headers as Postfix hands them to a milter
// with SMFIP_HDR_LEADSPC (value after the colon kept byte for byte,
// continuation lines joined with a bare LF) and a CRLF body. Input line
// ends may be LF or CRLF.
func Split(raw []byte) ([]Header, []byte) {
	br := bufio.NewReader(bytes.NewReader(raw))
	var headers []Header
	for {
		line, err := br.ReadString('\n')
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" {
			break
		}
		if (trimmed[0] == ' ' || trimmed[0] == '\t') && len(headers) > 0 {
			headers[len(headers)-1].Value += "\n" + trimmed
		} else if name, value, ok := strings.Cut(trimmed, ":"); ok {
			headers = append(headers, Header{name, value})
		}
		if err != nil {
			break
		}
	}
	rest, _ := io.ReadAll(br)
	return headers, ToCRLF(rest)
}

// ToCRLF turns bare LF into CRLF.
func ToCRLF(b []byte) []byte {
	var out bytes.Buffer
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// Render writes headers and body as the message the receiver gets (CRLF).
func Render(headers []Header, body []byte) []byte {
	var b bytes.Buffer
	for _, h := range headers {
		fmt.Fprintf(&b, "%s:%s\r\n", h.Name, strings.ReplaceAll(strings.ReplaceAll(h.Value, "\r\n", "\n"), "\n", "\r\n"))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// Lines is a body of size bytes of CRLF text lines, generated as it is
// read, so that tests and the load tool can send huge messages without
// holding them in memory.
func Lines(size int64) io.Reader {
	return &lines{left: size, line: []byte("The quick brown fox jumps over the lazy dog, again and again. 0123456789\r\n")}
}

type lines struct {
	left int64
	line []byte
	pos  int
}

func (l *lines) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && l.left > 0 {
		c := copy(p[n:], l.line[l.pos:])
		c = int(min(int64(c), l.left))
		n += c
		l.left -= int64(c)
		l.pos = (l.pos + c) % len(l.line)
	}
	return n, nil
}
