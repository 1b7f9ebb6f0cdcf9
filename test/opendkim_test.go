package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"vouch/internal/mtaclient"
	"vouch/internal/testutil"
)

const opendkimBin = "/usr/sbin/opendkim"

func requireOpenDKIM(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(opendkimBin); err != nil {
		if os.Getenv("VOUCH_SKIP_E2E") != "" {
			t.Skip("opendkim not installed and VOUCH_SKIP_E2E set")
		}
		t.Fatal("opendkim is not installed: run .ci/run (or apt-get install opendkim opendkim-tools) or set VOUCH_SKIP_E2E=1")
	}
}

// startOpenDKIM runs the real OpenDKIM in the foreground with conf (Socket
// and PidFile are added) and returns its milter address.
func startOpenDKIM(t testing.TB, dir, conf string) string {
	t.Helper()
	port := freePort(t)
	path := filepath.Join(dir, fmt.Sprintf("opendkim-%d.conf", port))
	write(t, path, conf+fmt.Sprintf("Socket\tinet:%d@127.0.0.1\nPidFile\t%s\n", port, filepath.Join(dir, fmt.Sprintf("opendkim-%d.pid", port))))
	logs := &testutil.LogBuffer{}
	cmd := exec.Command(opendkimBin, "-f", "-x", path)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() || os.Getenv("VOUCH_E2E_LOGS") != "" {
			t.Logf("opendkim output (%s):\n%s", path, logs.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(15 * time.Second); ; {
		select {
		case <-exited:
			t.Fatalf("opendkim exited: %v\nconfig %s:\n%s\noutput:\n%s", cmd.ProcessState, path, conf, logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("opendkim does not listen on %s\noutput:\n%s", addr, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendPostfixLike is mtaclient.Send, except that an accept before the end
// of the message ends the milter's part as Postfix ends it: the message
// goes on unchanged. OpenDKIM in Mode s accepts at end of headers every
// message it does not sign; mtaclient.Send would send the body anyway and
// time out waiting for a reply that never comes.
func sendPostfixLike(addr string, m *mtaclient.Message) (*mtaclient.Result, error) {
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroMTAFQDN, "mx.example.test")
	macros.Set(gomilter.MacroDaemonName, "smtpd")
	macros.Set(gomilter.MacroClientAddr, m.ClientIP)
	macros.Set(gomilter.MacroQueueId, m.QueueID)
	if m.AuthUser != "" {
		macros.Set(gomilter.MacroAuthType, "PLAIN")
		macros.Set(gomilter.MacroAuthAuthen, m.AuthUser)
	}
	s, err := mtaclient.NewClient("tcp", addr).Session(macros)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	name := m.ClientName
	if name == "" {
		name = "[" + m.ClientIP + "]"
	}
	family := gomilter.FamilyInet
	if strings.Contains(m.ClientIP, ":") {
		family = gomilter.FamilyInet6
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		return nil, err
	}
	type step struct {
		stage string
		do    func() (*gomilter.Action, error)
	}
	steps := []step{
		{"connect", func() (*gomilter.Action, error) { return s.Conn(name, family, 25000, m.ClientIP) }},
		{"helo", func() (*gomilter.Action, error) { return s.Helo(m.HELO) }},
		{"mail", func() (*gomilter.Action, error) { return s.Mail(m.From, "") }},
	}
	for _, r := range m.Rcpts {
		steps = append(steps, step{"rcpt", func() (*gomilter.Action, error) { return s.Rcpt(r, "") }})
	}
	steps = append(steps, step{"data", s.DataStart})
	for _, h := range m.Headers {
		steps = append(steps, step{"header", func() (*gomilter.Action, error) { return s.HeaderField(h.Name, h.Value, nil) }})
	}
	steps = append(steps, step{"eoh", s.HeaderEnd})
	// Chunks of at most 65535 bytes, and one even for an empty body.
	for first := true; first || len(body) > 0; first = false {
		chunk := body[:min(len(body), 65535)]
		body = body[len(chunk):]
		steps = append(steps, step{"body", func() (*gomilter.Action, error) { return s.BodyChunk(chunk) }})
	}
	res := &mtaclient.Result{Headers: m.Headers}
	for _, st := range steps {
		act, err := st.do()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.stage, err)
		}
		if act.StopProcessing() {
			res.Stage, res.Action = st.stage, act
			return res, nil
		}
		if act.Type == gomilter.ActionAccept {
			res.Action = act // the milter is done with this message
			return res, nil
		}
	}
	mods, act, err := s.End()
	if err != nil {
		return nil, err
	}
	res.Mods, res.Action = mods, act
	res.Headers = mtaclient.Apply(m.Headers, mods)
	if act.StopProcessing() {
		res.Stage = "eom"
	}
	return res, nil
}

// outcome is what a milter did to a message: "tempfail", or the sorted
// signatures ("d=… s=…", with " i=…" when there is one); none means it
// passed unsigned.
func outcome(t testing.TB, r *mtaclient.Result) []string {
	t.Helper()
	if !r.Accepted() {
		if r.Action != nil && (r.Action.Type == gomilter.ActionTempFail || r.Action.Type == gomilter.ActionRejectWithCode && r.Action.SMTPCode/100 == 4) {
			return []string{"tempfail"}
		}
		t.Fatalf("stage %q: %v", r.Stage, r.Action)
	}
	var out []string
	for _, h := range r.Headers {
		if !strings.EqualFold(h.Name, "DKIM-Signature") {
			continue
		}
		tags := map[string]string{}
		for _, tv := range strings.Split(h.Value, ";") {
			k, v, _ := strings.Cut(tv, "=")
			tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
		}
		s := "d=" + tags["d"] + " s=" + tags["s"]
		if tags["i"] != "" {
			s += " i=" + tags["i"]
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TestOpenDKIMSideBySide runs the real OpenDKIM and vouch over the very
// same KeyTable, SigningTable (refile: and plain, each with and without
// MultipleSignatures) and InternalHosts files, sends both
// the same messages from the same clients, and requires the same outcome:
// signed or not, with which d= and s= (and i=), or tempfailed. Every
// signature of either must verify.
func TestOpenDKIMSideBySide(t *testing.T) {
	requireOpenDKIM(t)
	dir := t.TempDir()
	z := newZone(t)
	keys := filepath.Join(dir, "keys")
	z.genkey(t, keys+"/boss", "corp.test", "boss", "rsa")
	z.genkey(t, keys+"/corp", "corp.test", "corp", "rsa")
	z.genkey(t, keys+"/special", "special.wild.test", "special", "rsa")
	z.genkey(t, keys+"/wild", "wild.test", "wild", "rsa")
	z.genkey(t, keys+"/pct", "pct.test", "pct", "rsa")
	// KeyTable domain "%" and "%" in the path: one key file per From
	// domain; nofile.test has none, so both must tempfail.
	z.genkey(t, keys+"/lazy/lazy.test", "lazy.test", "lazy", "rsa")
	// One key for d=ident.test and d=drop.test (KeyTable domain "%").
	z.genkey(t, keys+"/ident", "ident.test", "ident", "rsa")
	txt, err := os.ReadFile(filepath.Join(keys, "ident", "ident.txt"))
	if err != nil {
		t.Fatal(err)
	}
	record := strings.Replace(string(txt), "ident._domainkey\t", "ident._domainkey.drop.test.\t300\t", 1)
	if err := z.Add(strings.TrimSpace(record[:strings.LastIndex(record, ";")])); err != nil {
		t.Fatal(err)
	}

	keyTable := filepath.Join(dir, "KeyTable")
	write(t, keyTable, fmt.Sprintf(`# name      domain:selector:key file
boss          corp.test:boss:%[1]s/boss/boss.private
corp          corp.test:corp:%[1]s/corp/corp.private
special       special.wild.test:special:%[1]s/special/special.private
wild          wild.test:wild:%[1]s/wild/wild.private
pct.test      pct.test:pct:%[1]s/pct/pct.private
lazy          %%:lazy:%[1]s/lazy/%%/lazy.private
ident         %%:ident:%[1]s/ident/ident.private
`, keys))
	// The same policy as a refile: table and as a plain one (OpenDKIM's
	// fixed lookup order: user@host, host, user@.parent, .parent, ...).
	refileTable := filepath.Join(dir, "SigningTable.refile")
	write(t, refileTable, `# refile: patterns, first match wins (all with MultipleSignatures)
boss@corp.test          boss        # a specific row before the domain's row
*@corp.test             corp
*@*.corp.test           corp
*@special.wild.test     special     # before the wildcard row below
ceo@*.wild.test         special
*@*.wild.test           wild
*@pct.test              %
*@lazy.test             lazy
*@nofile.test           lazy
*@ident.test            ident:news@%
*@drop.test             ident:someone@elsewhere.test
`)
	plainTable := filepath.Join(dir, "SigningTable.plain")
	write(t, plainTable, `# plain: the most specific key wins, whatever the order
.wild.test              wild
ceo@.wild.test          special
special.wild.test       special
.corp.test              corp
corp.test               corp
boss@corp.test          boss
pct.test                %
lazy.test               lazy
nofile.test             lazy
ident.test              ident:news@%
drop.test               ident:someone@elsewhere.test
`)
	internalHosts := filepath.Join(dir, "InternalHosts")
	write(t, internalHosts, `# trusted clients
10.0.0.0/8
!10.0.0.5           # a host inside the internal network that is not trusted
.corp.internal
!bad.corp.internal
2001:db8::/32
*.wild.internal     # OpenDKIM runs with it, and it matches no host name
172.20.1.2/16       # host bits set
192.0.2.0/33        # not a network
`)

	const trusted = "10.1.2.3"
	cases := []msgCase{
		{name: "specific row before the domain row", from: "boss@corp.test", clientIP: trusted,
			want: []string{"d=corp.test s=boss"}, wantMulti: []string{"d=corp.test s=boss", "d=corp.test s=corp"}},
		{name: "domain row", from: "staff@corp.test", clientIP: trusted, want: []string{"d=corp.test s=corp"}},
		{name: "local part any case", from: "BOSS@Corp.Test", clientIP: trusted,
			want: []string{"d=corp.test s=boss"}, wantMulti: []string{"d=corp.test s=boss", "d=corp.test s=corp"}},
		{name: "subdomain wildcard", from: "staff@sales.corp.test", clientIP: trusted, want: []string{"d=corp.test s=corp"}},
		{name: "specific domain before wildcard", from: "x@special.wild.test", clientIP: trusted,
			want: []string{"d=special.wild.test s=special"}, wantMulti: []string{"d=special.wild.test s=special", "d=wild.test s=wild"}},
		{name: "wildcard row", from: "x@shop.wild.test", clientIP: trusted, want: []string{"d=wild.test s=wild"}},
		{name: "user row for subdomains", from: "ceo@shop.wild.test", clientIP: trusted,
			want: []string{"d=special.wild.test s=special"}, wantMulti: []string{"d=special.wild.test s=special", "d=wild.test s=wild"}},
		{name: "parent of a wildcard has no row", from: "x@wild.test", clientIP: trusted},
		{name: "domain without a row", from: "x@nokey.test", clientIP: trusted},
		{name: "percent as key name", from: "x@pct.test", clientIP: trusted, want: []string{"d=pct.test s=pct"}},
		{name: "percent in key path", from: "x@lazy.test", clientIP: trusted, want: []string{"d=lazy.test s=lazy"}},
		{name: "key file missing for the domain", from: "x@nofile.test", clientIP: trusted, want: []string{"tempfail"}},
		{name: "identity with percent", from: "x@ident.test", clientIP: trusted, want: []string{"d=ident.test s=ident i=news@ident.test"}},
		{name: "identity outside d= dropped", from: "x@drop.test", clientIP: trusted, want: []string{"d=drop.test s=ident"}},

		{name: "untrusted client", from: "boss@corp.test", clientIP: "198.51.100.7"},
		{name: "untrusted client, missing key not tried", from: "x@nofile.test", clientIP: "198.51.100.7"},
		{name: "authenticated untrusted client", from: "staff@corp.test", clientIP: "198.51.100.7", auth: "staff", want: []string{"d=corp.test s=corp"}},
		{name: "loopback not in InternalHosts", from: "staff@corp.test", clientIP: "127.0.0.1"},
		{name: "negated address inside the internal network", from: "staff@corp.test", clientIP: "10.0.0.5"},
		{name: "neighbour of the negated address", from: "staff@corp.test", clientIP: "10.0.0.6", want: []string{"d=corp.test s=corp"}},
		{name: "internal host name", from: "staff@corp.test", clientName: "desk.corp.internal", clientIP: "198.51.100.8", want: []string{"d=corp.test s=corp"}},
		{name: "negated host name", from: "staff@corp.test", clientName: "bad.corp.internal", clientIP: "198.51.100.9"},
		{name: "negated host name from an internal address", from: "staff@corp.test", clientName: "bad.corp.internal", clientIP: "10.1.2.4", want: []string{"d=corp.test s=corp"}},
		{name: "IPv6 internal network", from: "staff@corp.test", clientIP: "2001:db8::25", want: []string{"d=corp.test s=corp"}},
		{name: "IPv6 outside", from: "staff@corp.test", clientIP: "2001:db9::25"},
		{name: "wildcard entry is no wildcard", from: "staff@corp.test", clientName: "desk.wild.internal", clientIP: "198.51.100.10"},
		{name: "network entry with host bits", from: "staff@corp.test", clientIP: "172.20.9.9"},
		{name: "network entry with host bits, its own address", from: "staff@corp.test", clientIP: "172.20.1.2"},
		{name: "prefix too long", from: "staff@corp.test", clientIP: "192.0.2.1"},
	}

	for _, table := range []struct{ name, spec string }{{"refile", "refile:" + refileTable}, {"plain", "file:" + plainTable}} {
		for _, multi := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/MultipleSignatures=%v", table.name, multi), func(t *testing.T) {
				sideBySide(t, z, dir, keyTable, table.spec, internalHosts, multi, cases)
			})
		}
	}
}

type msgCase struct {
	name, from, clientName, clientIP, auth string
	want, wantMulti                        []string // nil: unsigned; wantMulti nil: same as want
}

// sideBySide starts OpenDKIM and vouch on the same files and sends both
// every case.
func sideBySide(t *testing.T, z *zone, dir, keyTable, signingTable, internalHosts string, multi bool, cases []msgCase) {
	yesno := map[bool]string{false: "no", true: "yes"}[multi]
	// RequireSafeKeys no: OpenDKIM checks every directory above a key and
	// refuses (tempfails) keys under a world-writable /tmp. vouch only
	// checks the file itself (0600, root), so it keeps its default.
	od := startOpenDKIM(t, dir, fmt.Sprintf(`Mode			s
Canonicalization	relaxed/relaxed
KeyTable		file:%s
SigningTable		%s
InternalHosts		%s
MultipleSignatures	%s
RequireSafeKeys		no
Syslog			no
LogWhy			yes
`, keyTable, signingTable, internalHosts, yesno))
	v := startVouch(t, dir, fmt.Sprintf(`
[dns]
servers = [%q]
timeout = "2s"
[signing]
internal_hosts = []
internal_hosts_file = %q
key_table = %q
signing_table = %q
multiple_signatures = %v
[screen]
enabled = false
`, z.Addr, internalHosts, keyTable, signingTable, multi))

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			marker := fmt.Sprintf("side-%s-%v-%d", signingTable[:strings.Index(signingTable, ":")], multi, i)
			headers, body := mtaclient.Split([]byte(message(c.from, marker)))
			send := func(addr string) ([]string, []byte) {
				t.Helper()
				r, err := sendPostfixLike(addr, &mtaclient.Message{
					ClientName: c.clientName, ClientIP: c.clientIP, HELO: "client.example.test",
					AuthUser: c.auth, From: c.from, Rcpts: []string{"bob@remote.test"},
					QueueID: strings.ReplaceAll(marker, "-", ""), Headers: headers, Body: strings.NewReader(string(body)),
				})
				if err != nil {
					t.Fatalf("milter %s: %v", addr, err)
				}
				got := outcome(t, r)
				if len(got) > 0 && got[0] != "tempfail" {
					return got, mtaclient.Render(r.Headers, body)
				}
				return got, nil
			}
			gotOD, msgOD := send(od)
			gotV, msgV := send(v.addr())
			if !slices.Equal(gotOD, gotV) {
				t.Fatalf("From %s, client %s [%s] auth %q:\n  opendkim: %q\n  vouch:    %q", c.from, c.clientName, c.clientIP, c.auth, gotOD, gotV)
			}
			want := c.want
			if multi && c.wantMulti != nil {
				want = c.wantMulti
			}
			if !slices.Equal(gotV, want) {
				t.Fatalf("both milters agree on %q, but the test expects %q", gotV, want)
			}
			for name, msg := range map[string][]byte{"opendkim": msgOD, "vouch": msgV} {
				if msg == nil {
					continue
				}
				if d := z.verifyAll(t, msg); len(d) != len(want) {
					t.Fatalf("%s: %d signatures verify, want %d:\n%s", name, len(d), len(want), msg)
				}
			}
		})
	}
}
