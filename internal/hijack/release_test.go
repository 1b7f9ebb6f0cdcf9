package hijack

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"vouch/internal/testutil"
)

const testPostmaster = "postmaster@example.com"

// releaseSetup is a guard that freezes alice, with release by reply on;
// it returns the guard, the sink and the Reply-To of the notification.
func releaseSetup(t *testing.T, c *clock) (*Guard, *testutil.SMTPServer, string) {
	t.Helper()
	sink := testutil.NewSMTPServer(t)
	cfg := testConfig(t, c)
	cfg.Messages, cfg.Action = 1, ActionFreeze
	cfg.Postmaster, cfg.NotifySMTP = testPostmaster, sink.Addr
	cfg.ReleaseAddress, cfg.ReleaseTokenTTL = "vouch-release@example.com", 7*24*time.Hour
	cfg.ReleaseKeyFile = filepath.Join(t.TempDir(), "release.key")
	g := newGuard(t, cfg)
	send(g, "alice@example.com", ip1, 1)
	if r := send(g, "alice@example.com", ip1, 1); r == nil || r.Code != 550 {
		t.Fatalf("alice not frozen: %s", replyString(r))
	}
	m := sink.Wait(t, 1)[0]
	rt := regexp.MustCompile(`\r\nReply-To: <(vouch-release\+[a-z2-7]{39}@example\.com)>\r\n`).FindStringSubmatch(m.Data)
	if rt == nil || !strings.Contains(m.Data, "or simply reply to this mail") {
		t.Fatalf("notification without release address:\n%s", m.Data)
	}
	return g, sink, rt[1]
}

func frozen(g *Guard, login string) bool {
	_, f, _ := g.check(ctx(), login, g.now())
	return f != nil
}

// TestReleaseByToken: only a good, unexpired, unused token of the current
// freeze, in a reply from the postmaster through a trusted client,
// releases the account.
func TestReleaseByToken(t *testing.T) {
	const auth = "smtp auth postmaster@example.com"
	tokenOf := func(addr string) string {
		local, _, _ := strings.Cut(addr, "@")
		_, tok, _ := strings.Cut(local, "+")
		return tok
	}
	for _, tc := range []struct {
		name    string
		token   func(g *Guard, addr string) string
		sender  string
		trusted string
		advance time.Duration
		err     error
	}{
		{name: "valid", token: func(_ *Guard, a string) string { return tokenOf(a) }, sender: testPostmaster, trusted: auth},
		{name: "valid, upper case, internal host", token: func(_ *Guard, a string) string { return strings.ToUpper(tokenOf(a)) },
			sender: "PostMaster@Example.COM", trusted: "internal host 127.0.0.1"},
		{name: "valid until the last second", token: func(_ *Guard, a string) string { return tokenOf(a) }, sender: testPostmaster,
			trusted: auth, advance: 7*24*time.Hour - time.Second},
		{name: "expired", token: func(_ *Guard, a string) string { return tokenOf(a) }, sender: testPostmaster, trusted: auth,
			advance: 7 * 24 * time.Hour, err: errExpired},
		{name: "forged MAC", token: func(_ *Guard, a string) string {
			tok := []byte(tokenOf(a))
			tok[30] = map[bool]byte{true: 'b', false: 'a'}[tok[30] == 'a']
			return string(tok)
		}, sender: testPostmaster, trusted: auth, err: errBadToken},
		{name: "garbage", token: func(*Guard, string) string { return "release-me" }, sender: testPostmaster, trusted: auth, err: errBadToken},
		{name: "another key", token: func(g *Guard, a string) string {
			id, exp, _, _ := parseToken(tokenOf(a))
			tok, _ := releaseToken([]byte("not the key"), Freeze{ID: id, Login: "alice@example.com"}, exp)
			return tok
		}, sender: testPostmaster, trusted: auth, err: errBadToken},
		{name: "wrong login", token: func(g *Guard, a string) string {
			id, exp, _, _ := parseToken(tokenOf(a))
			tok, _ := releaseToken(g.releaseKey, Freeze{ID: id, Login: "bob@example.com"}, exp)
			return tok
		}, sender: testPostmaster, trusted: auth, err: errBadToken},
		{name: "other freeze id", token: func(g *Guard, a string) string {
			tok, _ := releaseToken(g.releaseKey, Freeze{ID: newFreezeID(), Login: "alice@example.com"}, g.now().Add(time.Hour))
			return tok
		}, sender: testPostmaster, trusted: auth, err: errNoFreeze},
		{name: "untrusted client", token: func(_ *Guard, a string) string { return tokenOf(a) }, sender: testPostmaster, err: errUntrusted},
		{name: "not the postmaster", token: func(_ *Guard, a string) string { return tokenOf(a) }, sender: "alice@example.com",
			trusted: "smtp auth alice@example.com", err: errNotPostmaster},
		{name: "null sender", token: func(_ *Guard, a string) string { return tokenOf(a) }, trusted: auth, err: errNotPostmaster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			g, _, addr := releaseSetup(t, c)
			c.Advance(tc.advance)
			login, err := g.releaseByToken(ctx(), tc.token(g, addr), tc.sender, tc.trusted)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if frozen(g, "alice@example.com") != (tc.err != nil) {
				t.Fatalf("frozen %v after err %v", frozen(g, "alice@example.com"), err)
			}
			if tc.err == nil {
				if login != "alice@example.com" {
					t.Fatalf("login %q", login)
				}
				// One use: the same token again finds no freeze.
				if _, err := g.releaseByToken(ctx(), tc.token(g, addr), tc.sender, tc.trusted); !errors.Is(err, errNoFreeze) {
					t.Fatalf("replayed: %v", err)
				}
			}
		})
	}
	t.Run("replayed after a new freeze", func(t *testing.T) {
		c := newClock()
		g, sink, addr := releaseSetup(t, c)
		if _, err := g.Release(ctx(), "alice@example.com", "test"); err != nil {
			t.Fatal(err)
		}
		send(g, "alice@example.com", ip1, 1)
		send(g, "alice@example.com", ip1, 1)
		sink.Wait(t, 2)
		if _, err := g.releaseByToken(ctx(), tokenOf(addr), testPostmaster, auth); !errors.Is(err, errNoFreeze) || !frozen(g, "alice@example.com") {
			t.Fatalf("old token on a new freeze: %v", err)
		}
	})
}

// TestReleaseReply: the reply as the milter sees it is recognised by its
// recipient, releases, is reported for discarding and answered with a
// confirmation; other mail is left alone; a refused reply is discarded
// too, without confirmation.
func TestReleaseReply(t *testing.T) {
	c := newClock()
	g, sink, addr := releaseSetup(t, c)
	client := netip.MustParseAddr("192.0.2.99")
	if g.ReleaseReply(ctx(), []string{"<postmaster@example.com>", "<vouch-release@example.com>", "<vouch-release+x@other.example>"},
		testPostmaster, client, "smtp auth pm") {
		t.Fatal("ordinary mail taken for a release reply")
	}
	if !g.ReleaseReply(ctx(), []string{"<" + addr + ">"}, "<"+testPostmaster+">", client, "") {
		t.Fatal("reply from an untrusted client not discarded")
	}
	if !frozen(g, "alice@example.com") {
		t.Fatal("released by an untrusted client")
	}
	if !g.ReleaseReply(ctx(), []string{"<someone@example.com>", "<" + addr + ">"}, "<"+testPostmaster+">", client, "smtp auth pm") {
		t.Fatal("release reply not discarded")
	}
	if frozen(g, "alice@example.com") {
		t.Fatal("not released")
	}
	m := sink.Wait(t, 2)[1]
	if len(m.To) != 1 || m.To[0] != testPostmaster || !strings.Contains(m.Data, "Subject: vouch: account alice@example.com released\r\n") ||
		!strings.Contains(m.Data, "from postmaster@example.com (smtp auth pm, client 192.0.2.99)") {
		t.Fatalf("confirmation: %+v", m)
	}
	if r := send(g, "alice@example.com", ip1, 1); r != nil {
		t.Fatalf("alice after release: %s", r)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(sink.Messages()); n != 2 {
		t.Fatalf("%d mails", n)
	}
}

// TestReleaseKeyFile: made 0600 at the first start, the same key after;
// a key readable by others or damaged stops the start.
func TestReleaseKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "release.key")
	k1, err := loadReleaseKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	k2, err := loadReleaseKey(path)
	if err != nil || string(k1) != string(k2) || len(k1) != releaseKeyLn {
		t.Fatalf("second load: %x %x %v", k1, k2, err)
	}
	os.Chmod(path, 0o644)
	if _, err := loadReleaseKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("mode 0644: %v", err)
	}
	os.WriteFile(path, []byte("short\n"), 0o600)
	os.Chmod(path, 0o600)
	if _, err := loadReleaseKey(path); err == nil || !strings.Contains(err.Error(), "hex-encoded") {
		t.Fatalf("damaged: %v", err)
	}
}

// FuzzReleaseAddress: a recipient address parses into a token only when
// it is release_address+TOKEN; a token that parses comes back the same
// from a freshly made address, and its fields survive re-encoding.
func FuzzReleaseAddress(f *testing.F) {
	g := &Guard{releaseKey: []byte("k"), cfg: Config{ReleaseAddress: "vouch-release@example.com"}}
	tok, _ := releaseToken(g.releaseKey, Freeze{ID: "0123456789abcdef", Login: "a@b"}, time.Unix(1800000000, 0))
	for _, s := range []string{"<vouch-release+" + tok + "@example.com>", "vouch-release+" + strings.ToUpper(tok) + "@EXAMPLE.com",
		"<vouch-release@example.com>", "<vouch-release+@example.com>", "vouch-release+a+b@example.com", "x@y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rcpt string) {
		token := g.releaseTokenOf(rcpt)
		if token == "" {
			return
		}
		if !strings.Contains(strings.ToLower(rcpt), "vouch-release+"+strings.ToLower(token)+"@example.com") {
			t.Fatalf("token %q from %q", token, rcpt)
		}
		id, exp, mac, err := parseToken(token)
		if err != nil {
			return
		}
		again, err := releaseToken(g.releaseKey, Freeze{ID: id, Login: "a@b"}, exp)
		if err != nil {
			t.Fatal(err)
		}
		id2, exp2, _, err := parseToken(again)
		if err != nil || id2 != id || !exp2.Equal(exp) || len(mac) != releaseMAC {
			t.Fatalf("%q: %s %s, again %s %s %v", token, id, exp, id2, exp2, err)
		}
	})
}

// TestReleaseReplyRedis: a token of a freeze one instance made releases
// the account on every instance sharing Redis when the reply passes
// another instance (with a copy of the key file).
func TestReleaseReplyRedis(t *testing.T) {
	r := startRedis(t)
	sink := testutil.NewSMTPServer(t)
	c := newClock()
	cfg := redisConfig(t, c, r)
	cfg.Messages, cfg.Action = 1, ActionFreeze
	cfg.Postmaster, cfg.NotifySMTP = testPostmaster, sink.Addr
	cfg.ReleaseAddress, cfg.ReleaseTokenTTL = "vouch-release@example.com", time.Hour
	cfg.ReleaseKeyFile = filepath.Join(t.TempDir(), "release.key")
	a, b := newGuard(t, cfg), newGuard(t, cfg)
	send(a, "alice@example.com", ip1, 1)
	send(a, "alice@example.com", ip1, 1)
	m := sink.Wait(t, 1)[0]
	addr := regexp.MustCompile(`Reply-To: <([^>]+)>`).FindStringSubmatch(m.Data)
	if addr == nil || !frozen(b, "alice@example.com") {
		t.Fatalf("no freeze or no Reply-To:\n%s", m.Data)
	}
	if !b.ReleaseReply(ctx(), []string{"<" + addr[1] + ">"}, testPostmaster, ip2, "smtp auth pm") {
		t.Fatal("not taken for a release reply")
	}
	for i, g := range []*Guard{a, b} {
		if frozen(g, "alice@example.com") {
			t.Fatalf("instance %d: still frozen after the release", i)
		}
	}
	if r := send(a, "alice@example.com", ip1, 1); r != nil {
		t.Fatalf("after release: %s", r)
	}
	if m := sink.Wait(t, 2)[1]; !strings.Contains(m.Data, "released") {
		t.Fatalf("confirmation:\n%s", m.Data)
	}
}
