package verify

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vouch/internal/mtaclient"
	"vouch/internal/testutil"
)

var updateOpenDKIM = flag.Bool("update-opendkim", false, "rewrite testdata/opendkim from a live OpenDKIM run")

const opendkimBin = "/usr/sbin/opendkim"

// TestDKIMOpenDKIMSample verifies a message signed by the real OpenDKIM
// 2.11 (simple/simple, rsa-sha256), stored in testdata with its key
// record, so that it runs where OpenDKIM is not installed. Regenerate
// with: go test ./internal/verify -run OpenDKIM -update-opendkim
func TestDKIMOpenDKIMSample(t *testing.T) {
	raw, err := os.ReadFile("testdata/opendkim/signed.eml")
	if err != nil {
		t.Fatal(err)
	}
	zone, err := os.ReadFile("testdata/opendkim/key.zone")
	if err != nil {
		t.Fatal(err)
	}
	_, res := newZone(t, strings.TrimSpace(string(zone)))
	for _, chunk := range []int{0, 1, 100} {
		got, _ := verifyRaw(t, LookupTXT(res), string(raw), 0, chunk)
		wantResults(t, got, Pass)
	}
	// And a changed byte in the body breaks it.
	got, _ := verifyRaw(t, LookupTXT(res), strings.Replace(string(raw), "Hello Bob", "Hello Bub", 1), 0, 0)
	wantResults(t, got, Fail)
}

// TestDKIMOpenDKIMLive signs messages with the real OpenDKIM milter, in
// both canonicalizations, and verifies them.
func TestDKIMOpenDKIMLive(t *testing.T) {
	if _, err := os.Stat(opendkimBin); err != nil {
		testutil.Require(t, "opendkim (apt-get install opendkim)")
	}
	k := getKeys(t)
	dir := t.TempDir()
	keyPath := writeKey(t, dir, "od.private", k.rsa2048, true)
	record := keyRecord(t, "opendkim.test", "od2026", k.rsa2048)
	_, res := newZone(t, record)
	msg := sampleMessage("alice@opendkim.test")
	msg = strings.Replace(msg, "Hello Bob,\n", "Hello Bob,\nThis message was signed by OpenDKIM.\n", 1)

	for _, canon := range []string{"simple/simple", "relaxed/relaxed"} {
		t.Run(canon, func(t *testing.T) {
			addr := startOpenDKIM(t, dir, fmt.Sprintf("Mode\ts\nCanonicalization\t%s\nDomain\topendkim.test\nSelector\tod2026\nKeyFile\t%s\nRequireSafeKeys\tno\nSyslog\tno\n", canon, keyPath))
			hs, body := splitMessage(msg)
			mh := make([]mtaclient.Header, len(hs))
			for i, h := range hs {
				mh[i] = mtaclient.Header{Name: h.Name, Value: h.Value}
			}
			r, err := mtaclient.Send(mtaclient.NewClient("tcp", addr), &mtaclient.Message{
				ClientIP: "127.0.0.1", From: "alice@opendkim.test", Rcpts: []string{"bob@example.net"},
				Headers: mh, Body: bytes.NewReader(body),
			})
			if err != nil {
				t.Fatal(err)
			}
			signed := string(mtaclient.Render(r.Headers, body))
			if !strings.Contains(signed, "c="+canon) {
				t.Fatalf("OpenDKIM did not sign with %s:\n%s", canon, signed)
			}
			for _, chunk := range []int{0, 3} {
				got, _ := verifyRaw(t, LookupTXT(res), signed, 0, chunk)
				wantResults(t, got, Pass)
			}
			if *updateOpenDKIM && canon == "simple/simple" {
				if err := os.MkdirAll("testdata/opendkim", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile("testdata/opendkim/signed.eml", []byte(signed), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile("testdata/opendkim/key.zone", []byte(record+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// startOpenDKIM runs OpenDKIM in the foreground with conf and returns its
// milter address; it is stopped when the test ends.
func startOpenDKIM(t *testing.T, dir, conf string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	path := filepath.Join(dir, fmt.Sprintf("opendkim-%d.conf", port))
	conf += fmt.Sprintf("Socket\tinet:%d@127.0.0.1\nPidFile\t%s\n", port, filepath.Join(dir, fmt.Sprintf("opendkim-%d.pid", port)))
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(opendkimBin, "-f", "-x", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// Nothing to drain: SIGTERM makes OpenDKIM wait 5 s for sessions.
		cmd.Process.Kill()
		<-exited
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(15 * time.Second); ; {
		select {
		case <-exited:
			t.Fatalf("opendkim exited: %v\n%s", cmd.ProcessState, out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("opendkim does not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
