package policy

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"vouch/internal/dnstest"
	"vouch/internal/resolver"
	"vouch/whitelist"
)

// zone is a small world: good.test sends from 192.0.2.10 with matching
// forward and reverse DNS; the other names each break one rule.
var zone = []string{
	"10.2.0.192.in-addr.arpa. 300 IN PTR mail.good.test.",
	"mail.good.test. 300 IN A 192.0.2.10",
	"mail.good.test. 300 IN AAAA 2001:db8::10",
	"good.test. 300 IN MX 10 mail.good.test.",
	"good.test. 300 IN A 198.51.100.80", // web server
	"0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR mail.good.test.",
	// 192.0.2.30: PTR to a name that points elsewhere.
	"30.2.0.192.in-addr.arpa. 300 IN PTR host.other.test.",
	"host.other.test. 300 IN A 198.51.100.1",
	// 192.0.2.31: two PTR names, the second confirms.
	"31.2.0.192.in-addr.arpa. 300 IN PTR stale.other.test.",
	"31.2.0.192.in-addr.arpa. 300 IN PTR mx.multi.test.",
	"mx.multi.test. 300 IN A 192.0.2.31",
	// 192.0.2.32: PTR whose forward lookup fails.
	"32.2.0.192.in-addr.arpa. 300 IN PTR broken.test.",
	"broken.test. 300 IN A 192.0.2.32",
	// 192.0.2.40: the reverse zone is down.
	"40.2.0.192.in-addr.arpa. 300 IN PTR x.test.",
	// Sender domains.
	"mxonly.test. 300 IN MX 10 mx.provider.test.",
	"mx.provider.test. 300 IN A 192.0.2.50",
	"aonly.test. 300 IN A 192.0.2.60",
	"nullmx.test. 300 IN MX 0 .",
	"nullmx.test. 300 IN A 192.0.2.70",
	"down.test. 300 IN MX 10 mail.good.test.",
	"mxdown.test. 300 IN MX 10 mx.dead.test.",
	"mx.dead.test. 300 IN A 192.0.2.99",
	"txtonly.test. 300 IN TXT \"hello\"",
	// MX lookups that fail while the A lookup answers.
	"mxservfail.test. 300 IN A 192.0.2.10",
	"mxtimeout.test. 300 IN A 192.0.2.10",
	"mxfailnoa.test. 300 IN TXT \"no address\"",
}

func testResolver(t *testing.T) (*resolver.Resolver, *dnstest.Server) { return testResolverB(t) }

func testResolverB(t testing.TB) (*resolver.Resolver, *dnstest.Server) {
	t.Helper()
	srv := dnstest.New(t, zone...)
	srv.SetFault("40.2.0.192.in-addr.arpa", dnstest.ServFail)
	srv.SetFault("broken.test", dnstest.ServFail)
	srv.SetFault("down.test", dnstest.Drop)
	srv.SetFault("mx.dead.test", dnstest.ServFail)
	srv.SetTypeFault("mxservfail.test", mdns.TypeMX, dnstest.ServFail)
	srv.SetTypeFault("mxtimeout.test", mdns.TypeMX, dnstest.Drop)
	srv.SetTypeFault("mxfailnoa.test", mdns.TypeMX, dnstest.ServFail)
	res, err := resolver.New(resolver.Config{Servers: []string{srv.Addr}, Timeout: 200 * time.Millisecond, Attempts: 1, CacheSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return res, srv
}

type checkWant struct {
	outcomes     []Outcome
	undetermined []Outcome
}

func assertResult(t *testing.T, r Result, w checkWant) {
	t.Helper()
	if !slices.Equal(r.Outcomes, w.outcomes) || !slices.Equal(r.Undetermined, w.undetermined) {
		t.Fatalf("outcomes %v undetermined %v, want %v %v\nevidence: %q", r.Outcomes, r.Undetermined, w.outcomes, w.undetermined, r.Evidence)
	}
}

func TestCheckPTR(t *testing.T) {
	res, _ := testResolver(t)
	tests := []struct {
		ip    string
		want  checkWant
		iprev string
	}{
		{"192.0.2.10", checkWant{}, "pass"},
		{"2001:db8::10", checkWant{}, "pass"},
		{"::ffff:192.0.2.10", checkWant{}, "pass"},
		{"192.0.2.20", checkWant{outcomes: []Outcome{NoRecord}}, "permerror"},
		{"192.0.2.30", checkWant{outcomes: []Outcome{NoMatch}}, "fail"},
		{"192.0.2.31", checkWant{}, "pass"},
		{"192.0.2.32", checkWant{undetermined: []Outcome{NoMatch}}, "temperror"},
		{"192.0.2.40", checkWant{undetermined: []Outcome{NoRecord, NoMatch}}, "temperror"},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			r := checkPTR(context.Background(), res, netip.MustParseAddr(tc.ip).Unmap(), 10)
			assertResult(t, r, tc.want)
			if got := string(r.IPRev); got != tc.iprev {
				t.Fatalf("iprev %s, want %s", got, tc.iprev)
			}
		})
	}
}

func TestCheckHELO(t *testing.T) {
	res, _ := testResolver(t)
	tests := []struct {
		ip, helo string
		want     checkWant
	}{
		{"192.0.2.10", "mail.good.test", checkWant{}},
		{"192.0.2.10", "MAIL.GOOD.TEST.", checkWant{}},
		{"192.0.2.10", "good.test", checkWant{}},    // via its MX host
		{"192.0.2.10", "[192.0.2.10]", checkWant{}}, // own literal
		{"2001:db8::10", "[IPv6:2001:db8::10]", checkWant{}},
		{"192.0.2.10", "[192.0.2.11]", checkWant{outcomes: []Outcome{Invalid}}},
		{"192.0.2.10", "192.0.2.10", checkWant{outcomes: []Outcome{Invalid}}}, // bare IP
		{"192.0.2.10", "localhost", checkWant{outcomes: []Outcome{Invalid}}},
		{"192.0.2.10", "bad_-.test-", checkWant{outcomes: []Outcome{Invalid}}},
		{"192.0.2.10", "", checkWant{outcomes: []Outcome{Invalid}}},
		{"192.0.2.10", "missing.test", checkWant{outcomes: []Outcome{NotFound}}},
		{"192.0.2.10", "txtonly.test", checkWant{outcomes: []Outcome{NotFound}}}, // exists, no A/AAAA/MX
		{"192.0.2.30", "mail.good.test", checkWant{outcomes: []Outcome{Forged}}},
		{"192.0.2.10", "nullmx.test", checkWant{outcomes: []Outcome{Forged}}}, // a null MX is fine for a HELO name
		{"192.0.2.10", "down.test", checkWant{undetermined: []Outcome{NotFound, Forged}}},
		{"192.0.2.10", "mxservfail.test", checkWant{}}, // the A record matches: no MX needed
		{"192.0.2.11", "mxtimeout.test", checkWant{undetermined: []Outcome{Forged}}},
		{"192.0.2.10", "mxdown.test", checkWant{undetermined: []Outcome{Forged}}},
	}
	for _, tc := range tests {
		t.Run(tc.helo, func(t *testing.T) {
			assertResult(t, checkHELO(context.Background(), res, netip.MustParseAddr(tc.ip), tc.helo), tc.want)
		})
	}
}

func TestCheckSender(t *testing.T) {
	res, _ := testResolver(t)
	tests := []struct {
		ip, sender string
		want       checkWant
		skipped    bool
	}{
		{"192.0.2.10", "user@good.test", checkWant{}, false},
		{"192.0.2.10", "", checkWant{}, true},
		{"192.0.2.10", "postmaster", checkWant{}, true},
		{"192.0.2.10", "user@[192.0.2.10]", checkWant{}, false},
		{"192.0.2.10", "user@missing.test", checkWant{outcomes: []Outcome{NotFound}}, false},
		{"192.0.2.10", "user@txtonly.test", checkWant{outcomes: []Outcome{NotFound}}, false},
		{"192.0.2.10", "user@not..valid", checkWant{outcomes: []Outcome{NotFound}}, false},
		{"192.0.2.50", "user@mxonly.test", checkWant{}, false},
		{"192.0.2.60", "user@aonly.test", checkWant{outcomes: []Outcome{NoMX}}, false},
		{"192.0.2.10", "user@aonly.test", checkWant{outcomes: []Outcome{NoMX, Forged}}, false},
		{"192.0.2.70", "user@nullmx.test", checkWant{outcomes: []Outcome{NullMX}}, false},
		{"192.0.2.30", "user@good.test", checkWant{outcomes: []Outcome{Forged}}, false},
		{"192.0.2.10", "user@down.test", checkWant{undetermined: []Outcome{NotFound, NoMX, NullMX, Forged}}, false},
		// The MX lookup fails, the A lookup answers: whether the domain
		// has a (null) MX is open.
		{"192.0.2.10", "user@mxservfail.test", checkWant{undetermined: []Outcome{NoMX, NullMX}}, false},
		{"192.0.2.10", "user@mxtimeout.test", checkWant{undetermined: []Outcome{NoMX, NullMX}}, false},
		{"192.0.2.11", "user@mxtimeout.test", checkWant{undetermined: []Outcome{NoMX, NullMX, Forged}}, false},
		{"192.0.2.10", "user@mxfailnoa.test", checkWant{undetermined: []Outcome{NotFound, NoMX, NullMX, Forged}}, false},
		{"192.0.2.10", "user@mxdown.test", checkWant{undetermined: []Outcome{Forged}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.sender, func(t *testing.T) {
			r := checkSender(context.Background(), res, netip.MustParseAddr(tc.ip), tc.sender)
			if r.Skipped != tc.skipped {
				t.Fatalf("skipped %v", r.Skipped)
			}
			assertResult(t, r, tc.want)
		})
	}
}

func writeList(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConnWithWhitelists runs whole connections through the screener with
// the defaults in enforce mode.
func TestConnWithWhitelists(t *testing.T) {
	res, _ := testResolver(t)
	dir := t.TempDir()
	set, err := whitelist.NewSet(map[whitelist.Kind]string{
		whitelist.Reverse: writeList(t, dir, "ReverseXcpt.dat", "# partners without PTR\n192.0.2.21\n*.other.test\n"),
		whitelist.HELO:    writeList(t, dir, "HeloLookupWL.dat", "legacy.partner.test\n"),
		whitelist.Mail:    writeList(t, dir, "MailLookupWL.dat", "*@missing-but-ok.test\n192.0.2.22\n"),
	}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	s := NewScreener(testConfig(Enforce), res, set)
	tests := []struct {
		name, ip, helo, sender string
		auth                   bool
		action                 Action
		reply                  string
		iprev                  string
	}{
		{"good", "192.0.2.10", "mail.good.test", "user@good.test", false, Accept, "", "pass"},
		{"no PTR", "192.0.2.20", "mail.good.test", "user@good.test", false, Reject, "550 5.7.25", "permerror"},
		{"no PTR but authenticated", "192.0.2.20", "mail.good.test", "user@good.test", true, Accept, "", ""},
		{"no PTR, IP whitelisted", "192.0.2.21", "mail.good.test", "user@good.test", false, Log, "", ""},
		{"PTR name whitelisted", "192.0.2.30", "mail.good.test", "user@good.test", false, Log, "", "fail"},
		{"HELO not found", "192.0.2.10", "nothing.test", "user@good.test", false, Reject, "550 5.7.1", "pass"},
		{"HELO whitelisted", "192.0.2.10", "legacy.partner.test", "user@good.test", false, Accept, "", "pass"},
		{"sender not found", "192.0.2.10", "mail.good.test", "user@missing.test", false, Reject, "550 5.1.8", "pass"},
		{"sender whitelisted", "192.0.2.10", "mail.good.test", "x@missing-but-ok.test", false, Accept, "", "pass"},
		{"null MX", "192.0.2.10", "mail.good.test", "user@nullmx.test", false, Reject, "550 5.7.27", "pass"},
		{"null sender", "192.0.2.10", "mail.good.test", "", false, Accept, "", "pass"},
		{"PTR DNS down", "192.0.2.40", "mail.good.test", "user@good.test", false, Tempfail, "451 4.4.3", "temperror"},
		// The MX lookup that could show a null MX (reject) fails: defer.
		{"sender MX SERVFAIL", "192.0.2.10", "mail.good.test", "user@mxservfail.test", false, Tempfail, "451 4.4.3", "pass"},
		{"sender MX timeout", "192.0.2.10", "mail.good.test", "user@mxtimeout.test", false, Tempfail, "451 4.4.3", "pass"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := s.Connect(netip.MustParseAddr(tc.ip))
			defer c.Close()
			c.Helo(tc.helo)
			d := c.Mail(context.Background(), tc.sender, tc.auth)
			if d.Action != tc.action {
				t.Fatalf("action %s, want %s (%+v)", d.Action, tc.action, d.Verdicts)
			}
			reply := ""
			if d.Reply != nil {
				reply = d.Reply.String()[:len(tc.reply)]
			}
			if reply != tc.reply || d.IPRev != tc.iprev {
				t.Fatalf("reply %q iprev %q, want %q %q", reply, d.IPRev, tc.reply, tc.iprev)
			}
		})
	}
}

// TestBudget: a DNS server that answers too slowly ends in temp_error
// within the budget, not in a hang and not in "no record".
func TestBudget(t *testing.T) {
	res, srv := testResolver(t)
	srv.SetDelay("20.2.0.192.in-addr.arpa", 3*time.Second)
	cfg := testConfig(Enforce)
	cfg.Budget = 150 * time.Millisecond
	s := NewScreener(cfg, res, nil)
	start := time.Now()
	c := s.Connect(netip.MustParseAddr("192.0.2.20"))
	defer c.Close()
	c.Helo("mail.good.test")
	d := c.Mail(context.Background(), "user@good.test", false)
	if d.Action != Tempfail || d.Reply.String()[:9] != "451 4.4.3" {
		t.Fatalf("got %s %v", d.Action, d.Reply)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("decision took %s", el)
	}
}

// TestCachedChecksRunAtOnce: a PTR or HELO check whose first answer is
// cached runs at once (no goroutine); one that must ask the servers runs
// in the background, so Connect and Helo do not wait for the DNS.
func TestCachedChecksRunAtOnce(t *testing.T) {
	res, srv := testResolver(t)
	srv.SetDelay("20.2.0.192.in-addr.arpa", time.Second)
	srv.SetDelay("slowhelo.good.test", time.Second)
	s := NewScreener(testConfig(Enforce), res, nil)
	done := func(p *pending) bool {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	}
	warm := s.Connect(netip.MustParseAddr("192.0.2.10"))
	warm.Helo("mail.good.test")
	warm.Mail(context.Background(), "user@good.test", false)
	warm.Close()

	c := s.Connect(netip.MustParseAddr("192.0.2.10"))
	defer c.Close()
	c.Helo("mail.good.test")
	if !done(c.ptr) || !done(c.heloP) {
		t.Fatalf("with cached answers: PTR done %v, HELO done %v; want both done at once", done(c.ptr), done(c.heloP))
	}

	start := time.Now()
	cold := s.Connect(netip.MustParseAddr("192.0.2.20"))
	defer cold.Close()
	cold.Helo("slowhelo.good.test")
	if el := time.Since(start); el > 500*time.Millisecond || done(cold.ptr) || done(cold.heloP) {
		t.Fatalf("uncached: Connect and Helo took %s (PTR done %v, HELO done %v); want them in the background", el, done(cold.ptr), done(cold.heloP))
	}
}
