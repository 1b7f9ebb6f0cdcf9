package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vouch/internal/dnstest"
)

var screenZone = []string{
	// good: forward-confirmed reverse DNS, HELO and sender domain match.
	"10.2.0.192.in-addr.arpa. 300 IN PTR mail.good.test.",
	"mail.good.test. 300 IN A 192.0.2.10",
	"good.test. 300 IN MX 10 mail.good.test.",
	// no PTR: 192.0.2.20 (and the whitelisted 192.0.2.21); its HELO name is fine.
	"mail.noptr.test. 300 IN A 192.0.2.20",
	"mail.listed.test. 300 IN A 192.0.2.21",
	// PTR that does not resolve back.
	"30.2.0.192.in-addr.arpa. 300 IN PTR host.other.test.",
	"host.other.test. 300 IN A 198.51.100.1",
	// a HELO name of somebody else.
	"mail.forged.test. 300 IN A 198.51.100.5",
	// sender domains.
	"nullmx.test. 300 IN MX 0 .",
	"nullmx.test. 300 IN A 198.51.100.9",
	// 192.0.2.40: its reverse zone never answers.
	"40.2.0.192.in-addr.arpa. 300 IN PTR mail.slow.test.",
}

// TestScreeningBehindPostfix poses as various SMTP clients (XCLIENT) in
// front of two vouch instances, one in trial mode with the embedded
// defaults and one in enforce mode with stricter actions, and checks the
// exact replies clients get and the Authentication-Results of what is
// delivered.
func TestScreeningBehindPostfix(t *testing.T) {
	dir := t.TempDir()
	z := newZone(t, screenZone...)
	z.SetFault("40.2.0.192.in-addr.arpa", dnstest.Drop)
	write(t, filepath.Join(dir, "ReverseXcpt.dat"), "; partners without reverse DNS\n192.0.2.21   # listed partner\n")
	common := fmt.Sprintf(`
authserv_id = "mx.local.test"
[dns]
servers = [%q]
timeout = "1s"
attempts = 1
[whitelist]
reverse = %q
helo = %q
mail = %q
`, z.Addr, filepath.Join(dir, "ReverseXcpt.dat"), filepath.Join(dir, "HeloLookupWL.dat"), filepath.Join(dir, "MailLookupWL.dat"))
	trial := startVouch(t, dir, common+`
[screen]
budget = "3s"
`)
	enforce := startVouch(t, dir, common+`
[screen]
mode = "enforce"
budget = "3s"
[screen.ptr]
no_match = "reject"
[screen.helo]
forged = "reject_close"
`)
	trialPort, enforcePort := freePort(t), freePort(t)
	pf := startPostfix(t, []listener{{trialPort, trial.milter()}, {enforcePort, enforce.milter()}}, "", nil)

	good := &client{Addr: "192.0.2.10", Name: "mail.good.test", HELO: "mail.good.test"}
	tests := []struct {
		name          string
		cl            *client
		from          string
		trial, strict string // the reply to MAIL FROM, or "accept"
		closed        bool   // enforce mode closes the connection
		iprev         string // Authentication-Results of accepted mail (trial)
	}{
		{"good client", good, "user@good.test", "accept", "accept", false, "iprev=pass policy.iprev=192.0.2.10"},
		{"no PTR", &client{Addr: "192.0.2.20", HELO: "mail.noptr.test"}, "user@good.test", "450 4.7.25", "550 5.7.25", false, ""},
		{"PTR does not match", &client{Addr: "192.0.2.30", HELO: "[192.0.2.30]"}, "user@good.test", "accept", "550 5.7.25", false, "iprev=fail policy.iprev=192.0.2.30"},
		{"forged HELO", &client{Addr: "192.0.2.10", Name: "mail.good.test", HELO: "mail.forged.test"}, "user@good.test", "accept", "521 5.7.1", true, "iprev=pass"},
		{"sender domain does not exist", good, "user@nonexistent.test", "450 4.1.8", "550 5.1.8", false, ""},
		{"sender domain has null MX", good, "user@nullmx.test", "450 4.7.27", "550 5.7.27", false, ""},
		{"whitelisted IP without PTR", &client{Addr: "192.0.2.21", HELO: "mail.listed.test"}, "user@good.test", "accept", "accept", false, ""},
		{"DNS timeout", &client{Addr: "192.0.2.40", HELO: "[192.0.2.40]"}, "user@good.test", "451 4.4.3", "451 4.4.3", false, ""},
		{"null sender skips the MAIL check", good, "", "accept", "accept", false, "iprev=pass"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []struct {
				name   string
				port   int
				expect string
			}{{"trial", trialPort, tc.trial}, {"enforce", enforcePort, tc.strict}} {
				marker := fmt.Sprintf("screen-%s-%d", mode.name, time.Now().UnixNano())
				s := deliver(t, fmt.Sprintf("127.0.0.1:%d", mode.port), tc.cl, tc.from, "bob@local.test", message("someone@remote.test", marker))
				if mode.expect == "accept" {
					if s.Stage != "" {
						t.Fatalf("%s: want accepted, got %+v", mode.name, s)
					}
					got := string(pf.waitMail(marker))
					ar := unfold(got)
					if i := strings.Index(ar, "Authentication-Results: mx.local.test;"); i >= 0 {
						ar = ar[i:]
						ar = ar[:strings.IndexByte(ar, '\n')]
					}
					if tc.iprev != "" && !(strings.HasPrefix(ar, "Authentication-Results: mx.local.test;") && strings.Contains(ar, tc.iprev)) {
						t.Fatalf("%s: no %q in\n%s", mode.name, tc.iprev, got)
					}
					continue
				}
				if s.Stage != "MAIL" || !strings.HasPrefix(s.Reply, mode.expect+" ") {
					t.Fatalf("%s: want %q at MAIL, got %+v", mode.name, mode.expect, s)
				}
				if closed := !s.Open; mode.name == "enforce" && closed != tc.closed {
					t.Fatalf("%s: connection closed = %v, want %v", mode.name, closed, tc.closed)
				}
			}
		})
	}
	if !strings.Contains(trial.logs.String(), "would reject") {
		t.Fatalf("trial mode does not log what it would reject:\n%s", trial.logs.String())
	}
}

func unfold(s string) string {
	return strings.NewReplacer("\r\n\t", " ", "\n\t", " ", "\r\n ", " ", "\n ", " ").Replace(s)
}
