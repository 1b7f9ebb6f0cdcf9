// Package e2e drives the real vouch binary behind a real, private Postfix
// with an in-process DNS server on loopback, and checks what arrives in the
// mailbox and what the SMTP client sees.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"vouch/internal/dnstest"
	"vouch/internal/resolver"
	"vouch/internal/testutil"
	"vouch/internal/verify"
)

var vouchBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vouch-bin-")
	if err != nil {
		panic(err)
	}
	vouchBin = filepath.Join(dir, "vouch")
	build := exec.Command("go", "build", "-race", "-o", vouchBin, "vouch/cmd/vouch")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building vouch:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// vouch is a running `vouch serve`.
type vouch struct {
	t      testing.TB
	cmd    *exec.Cmd
	port   int
	config string
	logs   *testutil.LogBuffer
}

// startVouch writes config (with listen filled in) and runs vouch serve.
func startVouch(t testing.TB, dir, config string) *vouch {
	t.Helper()
	port := freePort(t)
	path := filepath.Join(dir, fmt.Sprintf("vouch-%d.toml", port))
	write(t, path, fmt.Sprintf("listen = \"inet:%d@127.0.0.1\"\n", port)+config)
	v := &vouch{t: t, port: port, config: path, logs: &testutil.LogBuffer{}}
	v.start()
	t.Cleanup(func() {
		v.stop()
		if t.Failed() || os.Getenv("VOUCH_E2E_LOGS") != "" {
			t.Logf("vouch log (%s):\n%s", path, v.logs.String())
		}
	})
	return v
}

func (v *vouch) start() {
	v.t.Helper()
	v.cmd = exec.Command(vouchBin, "serve", "-config", v.config, "-shutdown-timeout", "5s")
	v.cmd.Stdout, v.cmd.Stderr = v.logs, v.logs
	if err := v.cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	waitPort(v.t, v.addr())
}

func (v *vouch) addr() string { return fmt.Sprintf("127.0.0.1:%d", v.port) }

func (v *vouch) milter() string { return fmt.Sprintf("inet:127.0.0.1:%d", v.port) }

func (v *vouch) stop() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	v.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { v.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		v.cmd.Process.Kill()
		<-done
	}
	v.cmd = nil
}

// zone is the test DNS: keys published by the tests, and the clients and
// domains the screening tests pose as.
type zone struct {
	*dnstest.Server
	res *resolver.Resolver
}

func newZone(t testing.TB, records ...string) *zone {
	t.Helper()
	srv := dnstest.New(t, records...)
	res, err := resolver.New(resolver.Config{Servers: []string{srv.Addr}, Timeout: time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &zone{srv, res}
}

// genkey runs `vouch genkey` and publishes the record it printed.
func (z *zone) genkey(t testing.TB, dir, domain, selector, alg string) string {
	t.Helper()
	out, err := exec.Command(vouchBin, "genkey", "-d", domain, "-s", selector, "-t", alg, "-D", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("vouch genkey: %v\n%s", err, out)
	}
	z.publish(t, dir, domain, selector)
	return filepath.Join(dir, selector+".private")
}

// publish adds the record of DIR/SELECTOR.txt, as vouch genkey and
// opendkim-genkey write it, to the zone.
func (z *zone) publish(t testing.TB, dir, domain, selector string) {
	t.Helper()
	txt, err := os.ReadFile(filepath.Join(dir, selector+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	// The BIND record names the owner relative to the zone; complete it.
	record := strings.Replace(string(txt), selector+"._domainkey\t", selector+"._domainkey."+domain+".\t300\t", 1)
	if i := strings.Index(record, ";"); i > 0 && strings.Contains(record[:i], ")") {
		record = record[:i]
	}
	if err := z.Add(strings.TrimSpace(record)); err != nil {
		t.Fatalf("publishing %q: %v", record, err)
	}
}

func (z *zone) lookupTXT(name string) ([]string, error) { return verify.LookupTXT(z.res)(name) }

// verifyAll checks every DKIM-Signature with go-msgauth and with dkimpy
// (python3-dkim), both looking keys up in the test zone. It returns the d=
// of each signature.
func (z *zone) verifyAll(t testing.TB, msg []byte) []string {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: z.lookupTXT})
	if err != nil {
		t.Fatal(err)
	}
	var domains []string
	for _, v := range vs {
		if v.Err != nil {
			t.Fatalf("go-msgauth: d=%s: %v\n%s", v.Domain, v.Err, msg)
		}
		domains = append(domains, v.Domain)
	}
	z.dkimpy(t, msg, len(vs))
	return domains
}

// dkimpy verifies with python3-dkim; keys come from the test zone through
// a DNS function, so dkimpy never asks the machine's resolver.
func (z *zone) dkimpy(t testing.TB, msg []byte, sigs int) {
	t.Helper()
	// Collect the key records the signatures need (the verifier looks them
	// up in parallel, one goroutine per signature).
	var mu sync.Mutex
	var records strings.Builder
	dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		txts, err := z.lookupTXT(name)
		mu.Lock()
		defer mu.Unlock()
		for _, txt := range txts {
			fmt.Fprintf(&records, "%s\t%s\n", name, txt)
		}
		return txts, err
	}})
	keysFile := filepath.Join(t.TempDir(), "keys.tsv")
	write(t, keysFile, records.String())
	cmd := exec.Command("/usr/bin/python3", "dkimpy_verify.py", keysFile, fmt.Sprint(sigs))
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s\nmessage:\n%s", err, out, msg)
	}
}
