package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vouch/internal/config"
	"vouch/internal/daemon"
	"vouch/internal/hijack"
)

// TestAccountsListRelease drives `vouch accounts list` and `release`
// against a Guard serving its admin socket, as the daemon does.
func TestAccountsListRelease(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	sock := filepath.Join(t.TempDir(), "admin.sock")
	hc := daemon.HijackConfig(config.Default()) // the defaults, changed as below
	hc.Enabled, hc.Messages, hc.Recipients, hc.Window, hc.Action = true, 3, 100, 30*time.Minute, hijack.ActionFreeze
	hc.StateFile, hc.AdminSocket, hc.Backend = filepath.Join(t.TempDir(), "frozen.json"), sock, hijack.BackendMemory
	hc.Now = func() time.Time { return now }
	g, err := hijack.New(hc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.7")
	send := func(login string, n int) bool {
		if r := g.CheckSender(ctx, login, ip); r != nil {
			return false
		}
		g.Accepted(ctx, login, ip, make([]string, n))
		return true
	}
	send("alice@example.com", 2)
	now = now.Add(time.Minute)
	send("alice@example.com", 5)
	for i := 0; i < 4; i++ {
		send("mallory", 1)
	}

	var out bytes.Buffer
	if err := accountsList(ctx, &out, sock, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("list:\n%s", out.String())
	for _, want := range []string{
		"backend memory, action freeze, limits 3 messages and 100 recipients per 30m0s\n",
		"LOGIN              MESSAGES  RECIPIENTS  OLDEST                CLIENT IPS",
		"alice@example.com  2/3       7/100       2026-03-01T10:00:00Z  192.0.2.7",
		"mallory            3/3       3/100       2026-03-01T10:01:00Z  192.0.2.7",
		"FROZEN   SINCE                 BY",
		"mallory  2026-03-01T10:01:00Z",
		"messages limit reached: 3 in 30m0s (limit 3)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list lacks %q", want)
		}
	}

	out.Reset()
	if err := accountsList(ctx, &out, sock, true); err != nil || !strings.Contains(out.String(), `"login": "mallory"`) {
		t.Fatalf("json: %v\n%s", err, out.String())
	}

	out.Reset()
	if err := accountsRelease(ctx, &out, sock, "Mallory"); err != nil {
		t.Fatal(err)
	}
	if out.String() != "released Mallory; its counters start from zero\n" {
		t.Fatalf("release said %q", out.String())
	}
	if !send("mallory", 1) {
		t.Fatal("released account still refused")
	}
	out.Reset()
	accountsRelease(ctx, &out, sock, "bob")
	if out.String() != "bob was not frozen; its counters start from zero\n" {
		t.Fatalf("release said %q", out.String())
	}
	out.Reset()
	accountsList(ctx, &out, sock, false)
	if !strings.Contains(out.String(), "no frozen accounts") || !strings.Contains(out.String(), "mallory            1/3") {
		t.Fatalf("after release:\n%s", out.String())
	}

	g.Close()
	err = accountsList(ctx, &out, sock, false)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the vouch daemon on "+sock) {
		t.Fatalf("daemon gone: %v", err)
	}
}

func TestAccountsUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"release"}, {"list", "extra"}, {"release", "a", "b"}} {
		if code := runAccounts(args); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if got := adminSocketFromConfig(""); got != config.Default().Hijack.AdminSocket {
		t.Errorf("default socket %q", got)
	}
	// Flags after the login are read too; the socket does not exist.
	sock := filepath.Join(t.TempDir(), "none.sock")
	if code := runAccounts([]string{"release", "alice", "-socket", sock}); code != 1 {
		t.Errorf("release with a dead socket: exit %d, want 1", code)
	}
}
