package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"vouch/internal/mtaclient"
)

func waitLog(t testing.TB, v *vouch, want string) {
	t.Helper()
	waitLog2(t, v.logs, want)
}

func sendSigned(t testing.TB, v *vouch, z *zone, from string) []string {
	t.Helper()
	headers, body := mtaclient.Split([]byte(message(from, "ops")))
	r, err := mtaclient.Send(mtaclient.NewClient("tcp", v.addr()), &mtaclient.Message{ClientIP: "127.0.0.1", From: from, Headers: headers, Body: strings.NewReader(string(body))})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Accepted() {
		t.Fatalf("not accepted: %+v", r.Action)
	}
	msg := mtaclient.Render(r.Headers, body)
	if signatures(msg) == 0 {
		return nil
	}
	return z.verifyAll(t, msg)
}

// TestReloadAndMetrics: SIGHUP with a broken config keeps the old one in
// force (mail keeps being signed) and logs file and reason; a good config
// is swapped in; the metrics page counts messages and reloads.
func TestReloadAndMetrics(t *testing.T) {
	dir := t.TempDir()
	z := newZone(t)
	key1 := z.genkey(t, dir+"/one", "one.test", "s1", "rsa")
	key2 := z.genkey(t, dir+"/two", "two.test", "s1", "ed25519")
	metricsPort := freePort(t)
	good := fmt.Sprintf(`metrics_listen = "127.0.0.1:%d"
[dns]
servers = [%q]
[screen]
enabled = false
[[signing.key]]
domain = "one.test"
selector = "s1"
private_key = %q
`, metricsPort, z.Addr, key1)
	v := startVouch(t, dir, good)
	listen := fmt.Sprintf("listen = \"inet:%d@127.0.0.1\"\n", v.port)
	if d := sendSigned(t, v, z, "a@one.test"); len(d) != 1 {
		t.Fatalf("before reload: %v", d)
	}

	// A broken config: a key file that does not exist.
	write(t, v.config, listen+good+fmt.Sprintf("[[signing.key]]\ndomain = \"two.test\"\nselector = \"s1\"\nprivate_key = %q\n", dir+"/missing.private"))
	v.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, v, "reload failed; the previous configuration stays in force")
	if !strings.Contains(v.logs.String(), dir+"/missing.private: no such file") {
		t.Fatalf("the log does not name the file and reason:\n%s", v.logs.String())
	}
	if d := sendSigned(t, v, z, "a@one.test"); len(d) != 1 {
		t.Fatalf("after a failed reload: %v", d)
	}

	// A good config with a second domain.
	write(t, v.config, listen+good+fmt.Sprintf("[[signing.key]]\ndomain = \"two.test\"\nselector = \"s1\"\nprivate_key = %q\n", key2))
	v.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, v, "msg=reloaded")
	if d := sendSigned(t, v, z, "b@two.test"); len(d) != 1 || d[0] != "two.test" {
		t.Fatalf("after reload: %v", d)
	}

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`vouch_messages_signed_total{domain="one.test"} 2`,
		`vouch_messages_signed_total{domain="two.test"} 1`,
		`vouch_reloads_total{result="failed"} 1`,
		`vouch_reloads_total{result="ok"} 1`,
		`vouch_sessions_in_flight 0`,
		// in the fast build these signatures went through OpenSSL, none
		// of them made by crypto/rsa instead
		`vouch_rsa_openssl_fallbacks_total 0`,
		`vouch_build_info{`,
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() || os.Getenv("VOUCH_E2E_LOGS") != "" {
		t.Logf("metrics:\n%s", page)
	}
}

// TestServeCheck: `vouch serve -check` validates and exits 0 or 1 with the
// same messages a reload logs.
func TestServeCheck(t *testing.T) {
	dir := t.TempDir()
	okCfg := dir + "/ok.toml"
	write(t, okCfg, "[screen]\nenabled = false\n[dns]\nservers = [\"127.0.0.1:1\"]\n")
	badCfg := dir + "/bad.toml"
	write(t, badCfg, "[signing]\nkey_table = \""+dir+"/KeyTable\"\nsigning_table = \"refile:"+dir+"/SigningTable\"\n[dns]\nservers = [\"127.0.0.1:1\"]\n")
	write(t, dir+"/KeyTable", "# keys\nmail._domainkey.example.com example.com:mail\n")
	write(t, dir+"/SigningTable", "*@example.com mail._domainkey.example.com\n")
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{okCfg, 0, "is valid"},
		{badCfg, 1, dir + "/KeyTable:2: key table entry \"mail._domainkey.example.com\": want NAME DOMAIN:SELECTOR:KEYFILE"},
	} {
		out, err := runVouch("serve", "-check", "-config", tc.path)
		if status := exitStatus(err); status != tc.status || !strings.Contains(out, tc.want) {
			t.Errorf("%s: status %d, output:\n%s\nwant status %d and %q", tc.path, status, out, tc.status, tc.want)
		}
	}
}

// TestShutdownDrains: on SIGTERM vouch stops accepting connections but
// lets a message in flight finish (signed), then exits.
func TestShutdownDrains(t *testing.T) {
	dir := t.TempDir()
	z := newZone(t)
	key := z.genkey(t, dir, "drain.test", "s1", "rsa")
	v := startVouch(t, dir, fmt.Sprintf("[dns]\nservers = [%q]\n[screen]\nenabled = false\n[limits]\nshutdown_timeout = \"20s\"\n[[signing.key]]\ndomain = \"drain.test\"\nselector = \"s1\"\nprivate_key = %q\n", z.Addr, key))
	c := mtaclient.NewClient("tcp", v.addr())
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroQueueId, "DRAIN1")
	s, err := c.Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Conn("localhost", gomilter.FamilyInet, 1, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	s.Helo("localhost")
	s.Mail("a@drain.test", "")
	s.Rcpt("b@local.test", "")
	s.DataStart()

	v.cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, v, "shutting down")
	if conn, err := net.DialTimeout("tcp", v.addr(), time.Second); err == nil {
		conn.Close()
		t.Fatal("new connections are still accepted while draining")
	}
	headers, body := mtaclient.Split([]byte(message("a@drain.test", "drain")))
	for _, h := range headers {
		s.HeaderField(h.Name, h.Value, nil)
	}
	s.HeaderEnd()
	s.BodyChunk(body)
	mods, act, err := s.End()
	if err != nil || act.Type != gomilter.ActionAccept {
		t.Fatalf("message in flight: %v %+v", err, act)
	}
	hs := make([]mtaclient.Header, len(headers))
	copy(hs, headers)
	if d := z.verifyAll(t, mtaclient.Render(mtaclient.Apply(hs, mods), body)); len(d) != 1 {
		t.Fatalf("signatures: %v", d)
	}
	s.Close()
	done := make(chan error, 1)
	go func() { done <- v.cmd.Wait() }()
	select {
	case <-done:
		v.cmd = nil
	case <-time.After(10 * time.Second):
		t.Fatal("vouch did not exit after the last session ended")
	}
	if !strings.Contains(v.logs.String(), "msg=stopped") {
		t.Fatalf("no clean stop:\n%s", v.logs.String())
	}
}
