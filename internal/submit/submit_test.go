package submit

import (
	"bufio"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
)

// server is a scripted SMTP server: replies maps a command prefix ("RCPT
// TO:<b@") or "greeting" / "data-end" to the reply that replaces the
// normal 2xx/354. It records the recipients of messages it took.
type server struct {
	addr      string
	delivered chan []string
}

func newServer(t *testing.T, replies map[string]string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &server{addr: ln.Addr().String(), delivered: make(chan []string, 10)}
	reply := func(key, normal string) string {
		for k, r := range replies {
			if strings.HasPrefix(key, k) {
				return r
			}
		}
		return normal
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				say := func(s string) { c.Write([]byte(s + "\r\n")) }
				say(reply("greeting", "220 test ESMTP"))
				var rcpts []string
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimRight(line, "\r\n")
					switch cmd := strings.ToUpper(line); {
					case strings.HasPrefix(cmd, "EHLO"):
						say("250-test\r\n250 STARTTLS") // offered, never taken
					case strings.HasPrefix(cmd, "RCPT"):
						rp := reply(line, "250 ok")
						if rp[0] == '2' {
							rcpts = append(rcpts, line[len("RCPT TO:<"):len(line)-1])
						}
						say(rp)
					case cmd == "DATA":
						say("354 go")
						for {
							l, err := r.ReadString('\n')
							if err != nil {
								return
							}
							if l == ".\r\n" {
								break
							}
						}
						rp := reply("data-end", "250 queued")
						if rp[0] == '2' {
							s.delivered <- rcpts
						}
						say(rp)
					case cmd == "QUIT":
						say("221 bye")
						return
					case cmd == "RSET":
						rcpts = nil
						say("250 ok")
					default:
						say(reply(line, "250 ok"))
					}
				}
			}()
		}
	}()
	return s
}

func TestSend(t *testing.T) {
	closed := func() string { // a port nothing listens on
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return ln.Addr().String()
	}()
	tests := []struct {
		name      string
		replies   map[string]string
		closed    bool
		to        []string
		wantErr   string // "", "temporary", "permanent"
		code      int
		refused   []string
		delivered []string
	}{
		{name: "accepted", to: []string{"a@x.test", "b@y.test"}, delivered: []string{"a@x.test", "b@y.test"}},
		{name: "one refused for good", replies: map[string]string{"RCPT TO:<b@": "550 5.1.1 no such user"},
			to: []string{"a@x.test", "b@y.test"}, refused: []string{"b@y.test"}, delivered: []string{"a@x.test"}},
		{name: "all refused for good", replies: map[string]string{"RCPT": "550 5.7.1 no"},
			to: []string{"a@x.test", "b@y.test"}, wantErr: "permanent", code: 550, refused: []string{"a@x.test", "b@y.test"}},
		{name: "one refused for now: nobody gets it", replies: map[string]string{"RCPT TO:<b@": "450 4.2.0 later"},
			to: []string{"a@x.test", "b@y.test"}, wantErr: "temporary", code: 450},
		{name: "greeting 421", replies: map[string]string{"greeting": "421 4.3.2 busy"}, to: []string{"a@x.test"}, wantErr: "temporary", code: 421},
		{name: "MAIL 553", replies: map[string]string{"MAIL": "553 5.1.8 bad sender"}, to: []string{"a@x.test"}, wantErr: "permanent", code: 553},
		{name: "DATA end 451", replies: map[string]string{"data-end": "451 4.3.0 try later"}, to: []string{"a@x.test"}, wantErr: "temporary", code: 451},
		{name: "DATA end 554", replies: map[string]string{"data-end": "554 5.7.1 spam"}, to: []string{"a@x.test"}, wantErr: "permanent", code: 554},
		{name: "connection refused", closed: true, to: []string{"a@x.test"}, wantErr: "temporary"},
		{name: "no recipient", to: nil, wantErr: "permanent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.replies)
			addr := s.addr
			if tt.closed {
				addr = closed
			}
			refused, err := Send(context.Background(), addr, "vouch.test", "r@vouch.test", tt.to, []byte("Subject: x\r\n\r\nhi\r\n"))
			if !slices.Equal(refused, tt.refused) {
				t.Errorf("refused %v, want %v", refused, tt.refused)
			}
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Fatalf("err %v", err)
				}
			default:
				var e *Error
				if err == nil || !asError(err, &e) {
					t.Fatalf("err %v (%T), want a %s *Error", err, err, tt.wantErr)
				}
				if e.Temporary != (tt.wantErr == "temporary") || IsTemporary(err) != e.Temporary || e.Code != tt.code {
					t.Fatalf("err %v: temporary %v code %d, want %s %d", err, e.Temporary, e.Code, tt.wantErr, tt.code)
				}
			}
			var got []string
			select {
			case got = <-s.delivered:
			default:
			}
			if !slices.Equal(got, tt.delivered) {
				t.Errorf("delivered to %v, want %v", got, tt.delivered)
			}
		})
	}
}

func asError(err error, e **Error) bool {
	var x *Error
	ok := errors.As(err, &x)
	*e = x
	return ok
}
