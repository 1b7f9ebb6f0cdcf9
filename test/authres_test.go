package e2e

import (
	"fmt"
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"vouch/internal/mtaclient"
)

// TestAuthResultsIndexLikeOpenDKIM: the real OpenDKIM (Mode v) and vouch
// get the same inbound message and both insert their Authentication-
// Results at header index 0, which Postfix puts above the Received header
// of this hop (TestVerificationBehindPostfix checks the delivered order).
func TestAuthResultsIndexLikeOpenDKIM(t *testing.T) {
	requireOpenDKIM(t)
	dir := t.TempDir()
	z := newZone(t)
	od := startOpenDKIM(t, dir, "Mode\tv\nAuthservID\tmx.local.test\nAlwaysAddARHeader\tyes\nSyslog\tno\n")
	v := startVouch(t, dir, fmt.Sprintf("authserv_id = \"mx.local.test\"\n[dns]\nservers = [%q]\ntimeout = \"1s\"\n[screen]\nenabled = false\n", z.Addr))
	raw := "From: a@remote.test\nTo: b@local.test\nSubject: index\nDate: Sat, 5 Dec 2026 08:00:00 +0000\nMessage-ID: <index@remote.test>\n\nhello\n"
	for name, addr := range map[string]string{"opendkim": od, "vouch": v.addr()} {
		headers, body := mtaclient.Split([]byte(raw))
		r, err := sendPostfixLike(addr, &mtaclient.Message{ClientIP: "198.51.100.7", HELO: "mail.remote.test", From: "a@remote.test",
			Rcpts: []string{"b@local.test"}, QueueID: "AR" + name, Headers: headers, Body: strings.NewReader(string(body))})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for _, m := range r.Mods {
			if strings.EqualFold(m.HeaderName, "Authentication-Results") {
				got = append(got, fmt.Sprintf("type %d index %d", m.Type, m.HeaderIndex))
			}
		}
		if want := fmt.Sprintf("type %d index 0", gomilter.ActionInsertHeader); len(got) != 1 || got[0] != want {
			t.Errorf("%s: Authentication-Results changes %q, want one insert at index 0", name, got)
		}
	}
}
