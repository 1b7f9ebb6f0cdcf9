package testutil

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// SMTPServer is a scripted SMTP server on loopback for the tests of
// code that submits mail: it answers 2xx/354 unless a reply is set for a
// command, and keeps the messages it took.
type SMTPServer struct {
	Addr string

	mu      sync.Mutex
	replies map[string]string
	msgs    []SMTPMessage
}

// SMTPMessage is one message an SMTPServer took.
type SMTPMessage struct {
	From string
	To   []string
	Data string // without the final "."
}

// NewSMTPServer starts a server that stops when the test ends.
func NewSMTPServer(t testing.TB) *SMTPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &SMTPServer{Addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.session(c)
		}
	}()
	return s
}

// SetReplies replaces the scripted replies: a key is the start of a
// command line as the client sends it ("RCPT TO:<b@", "MAIL"), or
// "greeting" or "data-end"; its value is the whole reply line.
func (s *SMTPServer) SetReplies(replies map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = replies
}

// Messages returns the messages taken so far.
func (s *SMTPServer) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.msgs...)
}

// Wait waits up to 15 seconds until n messages arrived and returns them;
// fewer is a test failure.
func (s *SMTPServer) Wait(t testing.TB, n int) []SMTPMessage {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(s.Messages()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	msgs := s.Messages()
	if len(msgs) < n {
		t.Fatalf("want %d messages at %s, got %d", n, s.Addr, len(msgs))
	}
	return msgs
}

func (s *SMTPServer) reply(key, normal string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.replies {
		if strings.HasPrefix(key, k) {
			return r
		}
	}
	return normal
}

func (s *SMTPServer) session(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(line string) { c.Write([]byte(line + "\r\n")) }
	say(s.reply("greeting", "220 test ESMTP"))
	var m SMTPMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-test\r\n250 STARTTLS") // offered, and must not be taken
		case strings.HasPrefix(cmd, "MAIL FROM:<"):
			rp := s.reply(line, "250 ok")
			if rp[0] == '2' {
				m = SMTPMessage{}
				m.From, _, _ = strings.Cut(line[len("MAIL FROM:<"):], ">")
			}
			say(rp)
		case strings.HasPrefix(cmd, "RCPT TO:<"):
			rp := s.reply(line, "250 ok")
			if rp[0] == '2' {
				m.To = append(m.To, strings.TrimSuffix(line[len("RCPT TO:<"):], ">"))
			}
			say(rp)
		case cmd == "DATA":
			say("354 go on")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			m.Data = data.String()
			rp := s.reply("data-end", "250 queued")
			if rp[0] == '2' {
				s.mu.Lock()
				s.msgs = append(s.msgs, m)
				s.mu.Unlock()
			}
			say(rp)
		case cmd == "QUIT":
			say("221 bye")
			return
		case cmd == "RSET":
			m = SMTPMessage{}
			say("250 ok")
		default:
			say(s.reply(line, "250 ok"))
		}
	}
}
