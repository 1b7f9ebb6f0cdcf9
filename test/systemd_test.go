package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks contrib/systemd/vouch.service with
// systemd-analyze verify (the binary path replaced by the test build).
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("VOUCH_SKIP_E2E") != "" {
			t.Skip("systemd-analyze not installed")
		}
		t.Fatal("systemd-analyze not installed (apt-get install systemd)")
	}
	unit, err := os.ReadFile("../contrib/systemd/vouch.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=vouch", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=",
		"SystemCallFilter=@system-service", "RuntimeDirectory=vouch", "ReadWritePaths=-/etc/vouch/whitelist -/var/spool/postfix/vouch"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "vouch.service")
	write(t, path, strings.ReplaceAll(text, "/usr/sbin/vouch", vouchBin))
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
