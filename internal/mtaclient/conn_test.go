package mtaclient

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// recorder is a milter that writes down what it gets.
type recorder struct {
	gomilter.NoOpMilter
	mu  *sync.Mutex
	log *[]string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.log = append(*r.log, s)
}

func (r *recorder) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (*gomilter.Response, error) {
	r.add("connect " + host + " " + addr + " j=" + m.Get(gomilter.MacroMTAFQDN) + " client_addr=" + m.Get(gomilter.MacroClientAddr))
	return gomilter.RespContinue, nil
}

func (r *recorder) MailFrom(from, _ string, m gomilter.Modifier) (*gomilter.Response, error) {
	r.add("mail " + from + " i=" + m.Get(gomilter.MacroQueueId) + " auth=" + m.Get(gomilter.MacroAuthAuthen))
	return gomilter.RespContinue, nil
}

func (r *recorder) Header(name, value string, _ gomilter.Modifier) (*gomilter.Response, error) {
	r.add("header " + name + ":" + value)
	return gomilter.RespContinue, nil
}

func (r *recorder) EndOfMessage(m gomilter.Modifier) (*gomilter.Response, error) {
	r.add("eom i=" + m.Get(gomilter.MacroQueueId))
	if err := m.InsertHeader(1, "X-Signed", "yes"); err != nil {
		return nil, err
	}
	return gomilter.RespAccept, nil
}

func (r *recorder) Abort(gomilter.Modifier) error {
	r.add("abort")
	return nil
}

func startRecorder(t *testing.T, leadSpace bool) (string, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var log []string
	proto := gomilter.OptNoRcptTo
	if leadSpace {
		proto |= gomilter.OptHeaderLeadingSpace
	}
	srv := gomilter.NewServer(
		gomilter.WithActions(gomilter.OptAddHeader|gomilter.OptChangeHeader),
		gomilter.WithProtocols(proto),
		gomilter.WithMilter(func() gomilter.Milter { return &recorder{mu: &mu, log: &log} }),
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), log...)
	}
}

// TestConnLikePostfix: several transactions on one connection, ABORT after
// each, the first space of header values eaten unless the milter asked for
// it (and given back to the headers it adds), per-message macros.
func TestConnLikePostfix(t *testing.T) {
	headers := []Header{{"From", " a@example.test"}, {"Subject", " two\n\tlines"}, {"X-Tab", "\tx"}}
	for _, lead := range []bool{false, true} {
		addr, log := startRecorder(t, lead)
		k := NewConn(NewPostfixClient("tcp", addr))
		for i, qid := range []string{"Q1", "Q2", "Q3"} {
			r, err := k.Send(&Message{ClientIP: "192.0.2.1", From: "a@example.test", AuthUser: map[bool]string{true: "alice"}[i == 1], QueueID: qid, Headers: headers, Body: strings.NewReader("body\r\n")})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Accepted() || len(r.Headers) != 4 || r.Headers[0].Name != "X-Signed" {
				t.Fatalf("result %+v", r)
			}
			want := " yes"
			if lead {
				want = "yes" // the milter owns the space
			}
			if r.Headers[0].Value != want {
				t.Fatalf("leading space %v: added header value %q, want %q", lead, r.Headers[0].Value, want)
			}
		}
		if k.Messages() != 3 {
			t.Fatalf("%d messages", k.Messages())
		}
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
		from, subject := "header From:a@example.test", "header Subject:two\n\tlines"
		if lead {
			from, subject = "header From: a@example.test", "header Subject: two\n\tlines"
		}
		msg := func(qid, auth string) []string {
			return []string{"mail a@example.test i=" + qid + " auth=" + auth, from, subject, "header X-Tab:\tx", "eom i=" + qid, "abort"}
		}
		want := []string{"connect [192.0.2.1] 192.0.2.1 j=mx.example.test client_addr="} // not in Postfix's default connect macros
		want = append(want, msg("Q1", "")...)
		want = append(want, msg("Q2", "alice")...)
		want = append(want, msg("Q3", "")...)
		var got []string
		for range 100 { // the server may still be reading the last packets
			if got = log(); len(got) >= len(want) {
				break
			}
			waitABit()
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("leading space %v: the milter got\n%s\nwant\n%s", lead, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestConnStopAtConnect: a connection refused at connect gives that reply
// to every message, as Postfix does, without more traffic.
func TestConnStopAtConnect(t *testing.T) {
	srv := gomilter.NewServer(gomilter.WithMilter(func() gomilter.Milter { return refuseConnect{} }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	k := NewConn(NewPostfixClient("tcp", ln.Addr().String()))
	defer k.Close()
	for range 2 {
		r, err := k.Send(&Message{ClientIP: "192.0.2.1", From: "a@example.test"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Stage != "connect" || r.Action.Type != gomilter.ActionTempFail {
			t.Fatalf("result %+v", r)
		}
	}
}

type refuseConnect struct{ gomilter.NoOpMilter }

func (refuseConnect) Connect(string, string, uint16, string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespTempFail, nil
}

func waitABit() { time.Sleep(10 * time.Millisecond) }
