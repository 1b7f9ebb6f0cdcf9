package doctor

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"vouch/internal/config"
)

// TestDoctorSendmail: an INPUT_MAIL_FILTER line (.mc) or X line with
// InputMailFilters (.cf) that names vouch's socket is found, with what
// its F= flag means; anything else is a failure with the line to add.
func TestDoctorSendmail(t *testing.T) {
	cases := []struct {
		name, file, status, message string
	}{
		{"mc, F=T", "INPUT_MAIL_FILTER(`vouch', `S=inet:8891@127.0.0.1, F=T, T=S:30s;R:30s')dnl\n", OK, "F=T"},
		{"mc, localhost, no F", "INPUT_MAIL_FILTER(`vouch', `S=inet:8891@localhost')\n", OK, "passes mail unsigned"},
		{"mc, F=R", "INPUT_MAIL_FILTER(`vouch', `S=inet:8891@127.0.0.1, F=R')\n", Warn, "rejects mail permanently"},
		{"cf, used", "Xvouch, S=inet:8891@127.0.0.1, F=T\nO InputMailFilters=opendmarc,vouch\n", OK, "F=T"},
		{"cf, defined but unused", "Xvouch, S=inet:8891@127.0.0.1, F=T\nO InputMailFilters=opendmarc\n", Fail, "does not use it"},
		{"mc, other port", "INPUT_MAIL_FILTER(`opendkim', `S=inet:8892@127.0.0.1')\n", Fail, "no INPUT_MAIL_FILTER"},
		{"mc, MAIL_FILTER only", "MAIL_FILTER(`vouch', `S=inet:8891@127.0.0.1')\n", Fail, "no INPUT_MAIL_FILTER"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sendmail.mc")
			writeFile(t, path, "divert(0)dnl\n"+tc.file)
			cfg := config.Default()
			cfg.Listen = "inet:8891@localhost"
			rep := Run(context.Background(), Options{Config: cfg, SendmailCF: path})
			var got []string
			found := false
			for _, it := range rep.Items {
				got = append(got, it.Status+" "+it.Title+": "+it.Message+" "+it.Fix)
				if it.Check == "sendmail" && it.Status == tc.status && strings.Contains(it.Message, tc.message) {
					found = true
				}
			}
			if !found {
				t.Fatalf("want %s %q among:\n%s", tc.status, tc.message, strings.Join(got, "\n"))
			}
		})
	}
}

// FuzzDoctorSendmailLine: a filter written as INPUT_MAIL_FILTER or as an
// X line reads back with its name and socket, whatever else the file has.
func FuzzDoctorSendmailLine(f *testing.F) {
	f.Add("vouch", "inet:8891@127.0.0.1", "T", "dnl junk")
	f.Add("opendkim", "local:/run/opendkim/opendkim.sock", "", "O InputMailFilters=x")
	f.Add("a-b_c", "inet6:8891@[::1]", "R", "")
	f.Fuzz(func(t *testing.T, name, socket, flags, noise string) {
		if !validToken(name) || !validToken(socket) || strings.ContainsAny(flags, ",'`\n\r") || strings.Contains(noise, "\n") {
			return
		}
		equates := "S=" + socket
		if flags != "" {
			equates += ", F=" + flags
		}
		for _, text := range []string{
			noise + "\nINPUT_MAIL_FILTER(`" + name + "', `" + equates + "')dnl\n",
			"X" + name + ", " + equates + "\n" + noise + "\nO InputMailFilters=" + name + "\n",
		} {
			fs := parseSendmail(text)
			ok := false
			for _, f := range fs {
				if f.name == name && f.socket == socket && f.used {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("%q: filter %s %s not read back: %+v", text, name, socket, fs)
			}
		}
	})
}

// validToken: a name or socket as Sendmail writes them.
func validToken(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@[]") == ""
}
