package submit

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"

	"vouch/internal/testutil"
)

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
			s := testutil.NewSMTPServer(t)
			s.SetReplies(tt.replies)
			addr := s.Addr
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
				if !errors.As(err, &e) {
					t.Fatalf("err %v (%T), want a %s *Error", err, err, tt.wantErr)
				}
				if e.Temporary != (tt.wantErr == "temporary") || IsTemporary(err) != e.Temporary || e.Code != tt.code {
					t.Fatalf("err %v: temporary %v code %d, want %s %d", err, e.Temporary, e.Code, tt.wantErr, tt.code)
				}
			}
			var got []string
			if msgs := s.Messages(); len(msgs) > 0 {
				got = msgs[0].To
			}
			if !slices.Equal(got, tt.delivered) {
				t.Errorf("delivered to %v, want %v", got, tt.delivered)
			}
		})
	}
}
