package milter

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"vouch/internal/metrics"
	"vouch/internal/mtaclient"
	"vouch/internal/verify"
	"vouch/policy"
)

// The conversation benchmarks run whole milter conversations (one message
// per connection, as bench/compare.sh does) against an in-process server
// over loopback TCP, with the client of internal/mtaclient and DNS from
// internal/dnstest, warm in the resolver's cache. allocs/op and B/op count
// both sides: BenchmarkConversationNoop is the client and go-milter alone,
// so the difference to it is what vouch adds per message. Run with
//
//	go test -run X -bench Conversation -benchmem ./milter/

// benchClient is the screen zone of bench/screen.zone: every check passes,
// SPF passes and DMARC is published.
var benchClient = []string{
	"10.2.0.192.in-addr.arpa. 3600 IN PTR mail.client.test.",
	"mail.client.test. 3600 IN A 192.0.2.10",
	"client.test. 3600 IN MX 10 mail.client.test.",
	"client.test. 3600 IN A 192.0.2.10",
	`client.test. 3600 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
	`_dmarc.client.test. 3600 IN TXT "v=DMARC1; p=none"`,
}

// benchScreen enables every check with default.toml-like rules.
func benchScreen() *policy.Config {
	rules := func(m map[policy.Outcome]policy.Action) policy.CheckConfig {
		cc := policy.CheckConfig{Enabled: true, Rules: map[policy.Outcome]policy.Rule{}}
		for o, a := range m {
			cc.Rules[o] = policy.Rule{Action: a}
		}
		return cc
	}
	return &policy.Config{Mode: policy.Enforce, Budget: 2 * time.Second, MaxPTRNames: 10, Checks: map[policy.Check]policy.CheckConfig{
		policy.PTR:  rules(map[policy.Outcome]policy.Action{policy.NoRecord: policy.Reject, policy.NoMatch: policy.Log, policy.TempError: policy.Tempfail}),
		policy.HELO: rules(map[policy.Outcome]policy.Action{policy.Invalid: policy.Log, policy.NotFound: policy.Reject, policy.Forged: policy.Log, policy.TempError: policy.Tempfail}),
		policy.Mail: rules(map[policy.Outcome]policy.Action{policy.NotFound: policy.Reject, policy.NoMX: policy.Accept, policy.NullMX: policy.Reject, policy.Forged: policy.Log, policy.TempError: policy.Tempfail}),
	}}
}

// benchMessage is a message of milterbench's small corpus (about 3 KiB).
func benchMessage(i int) *mtaclient.Message {
	headers := []mtaclient.Header{
		{Name: "Received", Value: " from desk1.client.test (desk1.client.test [10.1.2.3])\n\tby mail.client.test (Postfix) with ESMTPSA id 4Q0000AB12\n\tfor <bob@remote.test>; Wed, 25 Nov 2026 10:00:00 +0000"},
		{Name: "From", Value: " \"User 1\" <user1@client.test>"},
		{Name: "To", Value: " <bob@remote.test>"},
		{Name: "Subject", Value: " Load test message"},
		{Name: "Date", Value: " Wed, 25 Nov 2026 10:00:00 +0000"},
		{Name: "Message-ID", Value: " <1.abc@client.test>"},
		{Name: "MIME-Version", Value: " 1.0"},
		{Name: "Content-Type", Value: " text/plain; charset=utf-8"},
		{Name: "Content-Transfer-Encoding", Value: " 8bit"},
	}
	return &mtaclient.Message{
		ClientIP: "192.0.2.10", ClientName: "mail.client.test", HELO: "mail.client.test",
		From: "user1@client.test", Rcpts: []string{"bob@remote.test"}, QueueID: "4Q0000AB12",
		Headers: headers, Body: strings.NewReader(benchBody),
	}
}

var benchBody = strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 48)

// newBenchbed is a testbed with bench/vouch-*.toml's settings: metrics on,
// log level warn, screening on and, with verification, SPF/DMARC/DKIM.
func newBenchbed(b *testing.B, withVerify bool) *testbed {
	tb := newTestbed(b, benchScreen())
	tb.dns.MustAdd(benchClient...)
	env := *tb.srv.Env()
	env.Log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env.Metrics = metrics.New("bench")
	if withVerify {
		vc := policy.DefaultVerifyConfig()
		env.Verify = &Verification{Config: verify.Config{Resolver: tb.res}, Policy: &vc, Mode: policy.Enforce}
	}
	tb.srv.SetEnv(&env)
	return tb
}

// runConversations sends benchMessage, changed by the edit functions, one
// message per connection, and checks each result.
func runConversations(b *testing.B, addr string, check func(*mtaclient.Result), edit ...func(*mtaclient.Message)) {
	// Postfix's way of using the socket (one write per packet, buffered
	// reads), as milterbench does: the client's syscalls do not drown
	// the server's in the profile.
	client := mtaclient.NewPostfixClient("tcp", addr)
	send := func(i int) {
		m := benchMessage(i)
		for _, e := range edit {
			e(m)
		}
		r, err := mtaclient.Send(client, m)
		if err != nil {
			b.Fatal(err)
		}
		if !r.Accepted() {
			b.Fatalf("not accepted: stage %q %+v", r.Stage, r.Action)
		}
		check(r)
	}
	send(0) // warm the resolver's cache
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		send(i)
	}
}

// BenchmarkConversationNoop is the reference: go-milter's no-op milter
// with vouch's protocol options (milterbench -peer noop).
func BenchmarkConversationNoop(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := gomilter.NewServer(gomilter.WithMilter(func() gomilter.Milter { return &gomilter.NoOpMilter{} }),
		gomilter.WithProtocols(protocol), gomilter.WithActions(gomilter.OptAddHeader))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	b.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil && !errors.Is(err, gomilter.ErrServerClosed) {
			b.Error(err)
		}
	})
	runConversations(b, ln.Addr().String(), func(*mtaclient.Result) {})
}

// BenchmarkConversationScreen is screening only (bench/vouch-screen.toml).
func BenchmarkConversationScreen(b *testing.B) {
	tb := newBenchbed(b, false)
	runConversations(b, tb.addr, func(r *mtaclient.Result) {
		if len(r.Mods) != 1 || r.Mods[0].HeaderName != "Authentication-Results" {
			b.Fatalf("modifications %+v", r.Mods)
		}
	})
}

// BenchmarkConversationInbound is screening, SPF and DMARC of an unsigned
// message (bench/vouch-inbound.toml).
func BenchmarkConversationInbound(b *testing.B) {
	tb := newBenchbed(b, true)
	runConversations(b, tb.addr, func(r *mtaclient.Result) {
		if len(r.Mods) != 1 || !strings.Contains(r.Mods[0].HeaderValue, "spf=pass") || !strings.Contains(r.Mods[0].HeaderValue, "dmarc=pass") {
			b.Fatalf("modifications %+v", r.Mods)
		}
	})
}

// BenchmarkConversationSign is an internal client's message signed with
// RSA-2048 (bench/vouch.toml): the RSA signature dominates its time.
func BenchmarkConversationSign(b *testing.B) {
	tb := newBenchbed(b, false)
	runConversations(b, tb.addr, func(r *mtaclient.Result) {
		if len(r.Mods) != 1 || r.Mods[0].HeaderName != "DKIM-Signature" {
			b.Fatalf("modifications %+v", r.Mods)
		}
	}, func(m *mtaclient.Message) {
		m.ClientIP, m.ClientName, m.From = "10.1.2.3", "desk1.example.test", "user1@example.test"
		m.Headers[1].Value = " \"User 1\" <user1@example.test>"
	})
}
