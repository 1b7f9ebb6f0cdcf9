package doctor

import (
	"slices"
	"strings"
	"testing"

	"vouch/internal/sockaddr"
)

// TestReaches: what each Postfix milter entry reaches, chrooted or not,
// with vouch on the Debian socket path.
func TestReaches(t *testing.T) {
	const queue = "/var/spool/postfix"
	d := &doctor{addr: sockaddr.Address{Network: "unix", Addr: "/var/spool/postfix/vouch/vouch.sock"}}
	cases := []struct {
		entry  string
		chroot bool
		want   bool
	}{
		{"unix:/vouch/vouch.sock", true, true},
		{"unix:/vouch/vouch.sock", false, false}, // /vouch/vouch.sock outside a chroot
		{"unix:/var/spool/postfix/vouch/vouch.sock", false, true},
		{"unix:/var/spool/postfix/vouch/vouch.sock", true, false}, // the old snippet's non_smtpd_milters
		{"unix:vouch/vouch.sock", true, true},                     // relative to queue_directory either way
		{"unix:vouch/vouch.sock", false, true},
		{"local:/vouch/vouch.sock", true, true},
		{"inet:localhost:8891", true, false},
	}
	for _, tc := range cases {
		if got, where := d.reaches(tc.entry, tc.chroot, queue); got != tc.want {
			t.Errorf("%s chroot=%v: %v (%s), want %v", tc.entry, tc.chroot, got, where, tc.want)
		}
	}
	d.addr = sockaddr.Address{Network: "tcp4", Addr: "localhost:8891"}
	for entry, want := range map[string]bool{"inet:localhost:8891": true, "inet:127.0.0.1:8891": true, "inet:[::1]:8891": true, "inet:127.0.0.1:8892": false, "inet:192.0.2.1:8891": false, "unix:/vouch/vouch.sock": false} {
		if got, _ := d.reaches(entry, true, queue); got != want {
			t.Errorf("%s: %v, want %v", entry, got, want)
		}
	}
}

// FuzzDoctorMilterEntries: the entries of a smtpd_milters value, written
// back comma-separated (brace entries as "{ addr, attrs }"), read the same.
func FuzzDoctorMilterEntries(f *testing.F) {
	f.Add("unix:/vouch/vouch.sock, inet:localhost:8891")
	f.Add("{ inet:localhost:8891, connect_timeout=10s } unix:/x")
	f.Add("  ,inet:127.0.0.1:8891\t\n")
	f.Fuzz(func(t *testing.T, v string) {
		first := milterEntries(v)
		for _, e := range first {
			if e == "" && !strings.Contains(v, "{") {
				t.Fatalf("%q: empty entry in %q", v, first)
			}
		}
		var parts []string
		for _, e := range first {
			if e == "" || strings.ContainsAny(e, "{}, \t\n") {
				return // a brace entry with odd content: not re-serializable
			}
			parts = append(parts, e)
		}
		if again := milterEntries(strings.Join(parts, ", ")); !slices.Equal(again, first) {
			t.Fatalf("%q: %q, then %q", v, first, again)
		}
	})
}
