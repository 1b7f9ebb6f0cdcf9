package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"
	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/mtaclient"
	"vouch/signer"
)

// TestOnBadSignatureSideBySide runs the real OpenDKIM (Mode v, the public
// key given with TestPublicKeys) and vouch on the
// configuration `vouch import-opendkim` made of the same opendkim.conf,
// and sends both the same messages from a client whose SPF passes aligned
// (so DMARC passes): a tampered signed message is refused by both with
// On-BadSignature reject and delivered by both with accept; an intact one
// is always delivered.
func TestOnBadSignatureSideBySide(t *testing.T) {
	requireOpenDKIM(t)
	dir := t.TempDir()
	z := newZone(t,
		`example.test. 300 IN TXT "v=spf1 ip4:192.0.2.25 -all"`,
		`_dmarc.example.test. 300 IN TXT "v=DMARC1; p=reject"`)
	keyPath := z.genkey(t, filepath.Join(dir, "keys"), "example.test", "sel", "rsa")
	key, _, err := signer.LoadKeyFile(keyPath, false)
	if err != nil {
		t.Fatal(err)
	}
	var signed bytes.Buffer
	raw := strings.ReplaceAll(message("alice@example.test", "onbad"), "\n", "\r\n")
	if err := dkim.Sign(&signed, strings.NewReader(raw), &dkim.SignOptions{
		Domain: "example.test", Selector: "sel", Signer: key,
		HeaderKeys:             []string{"From", "To", "Subject", "Date", "Message-ID"},
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
	}); err != nil {
		t.Fatal(err)
	}
	intact := strings.ReplaceAll(signed.String(), "\r\n", "\n")
	tampered := strings.Replace(intact, "Hallo Bob", "Hallo Eve", 1)

	// OpenDKIM reads the public key from a file (TestPublicKeys): its
	// libunbound resolver cannot be pointed at the test DNS's port.
	txts, err := z.lookupTXT("sel._domainkey.example.test")
	if err != nil || len(txts) != 1 {
		t.Fatalf("published key: %v %q", err, txts)
	}
	publicKeys := filepath.Join(dir, "TestPublicKeys")
	write(t, publicKeys, "sel._domainkey.example.test "+txts[0]+"\n")

	send := func(addr, msg string) string {
		t.Helper()
		headers, body := mtaclient.Split([]byte(msg))
		r, err := sendPostfixLike(addr, &mtaclient.Message{
			ClientIP: "192.0.2.25", HELO: "mail.example.test", From: "alice@example.test", Rcpts: []string{"bob@local.test"},
			QueueID: "ONBAD", Headers: headers, Body: bytes.NewReader(body),
		})
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		switch {
		case r.Accepted():
			return "accept"
		case r.Action.Type == gomilter.ActionReject || r.Action.Type == gomilter.ActionRejectWithCode && r.Action.SMTPCode/100 == 5:
			return "reject"
		case r.Action.Type == gomilter.ActionTempFail || r.Action.Type == gomilter.ActionRejectWithCode && r.Action.SMTPCode/100 == 4:
			return "tempfail"
		}
		return fmt.Sprintf("%v", r.Action)
	}

	for _, tc := range []struct {
		action                   string
		wantIntact, wantTampered string
	}{
		{"reject", "accept", "reject"},
		{"accept", "accept", "accept"},
	} {
		t.Run("On-BadSignature "+tc.action, func(t *testing.T) {
			conf := fmt.Sprintf("Mode\t\t\tv\nOn-BadSignature\t\t%s\nTestPublicKeys\t\t%s\nSyslog\t\t\tno\n", tc.action, publicKeys)
			od := startOpenDKIM(t, dir, conf)

			confPath := filepath.Join(dir, "opendkim-"+tc.action+".conf")
			write(t, confPath, conf)
			out, err := exec.Command(vouchBin, "import-opendkim", confPath).Output()
			if err != nil {
				t.Fatalf("vouch import-opendkim: %v", err)
			}
			v := startVouch(t, dir, string(out)+fmt.Sprintf("\n[dns]\nservers = [%q]\ntimeout = \"2s\"\n", z.Addr))

			for _, m := range []struct{ name, msg, want string }{{"intact", intact, tc.wantIntact}, {"tampered", tampered, tc.wantTampered}} {
				gotOD, gotV := send(od, m.msg), send(v.addr(), m.msg)
				if gotOD != m.want || gotV != m.want {
					t.Errorf("%s message: opendkim %s, vouch %s; want %s\nvouch config:\n%s", m.name, gotOD, gotV, m.want, out)
				}
			}
		})
	}
}
