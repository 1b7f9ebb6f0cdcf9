package doctor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vouch/internal/config"
	"vouch/internal/daemon"
	"vouch/internal/dnstest"
	"vouch/internal/resolver"
	"vouch/internal/sockaddr"
	"vouch/milter"
	"vouch/signer"
)

func requirePostconf(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("postconf")
	if err != nil {
		p = "/usr/sbin/postconf"
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("postconf is missing (apt-get install postfix)")
		}
		t.Skip("postconf is missing")
	}
	if _, err := user.Lookup("postfix"); err != nil {
		t.Fatal("postfix is installed but its user is missing")
	}
	return p
}

// setup is one test world: a Postfix config directory postconf reads
// for real, a queue directory with vouch's socket in it (Debian layout),
// an in-process vouch serving that socket with a key published in a test
// DNS server.
type setup struct {
	dir, queue, sock string
	main             map[string]string
	// master.cf: Debian's, then extra (the services the cases change).
	dist, extra string
}

// extraServices are, after Debian's master.cf (smtp, cleanup, pickup
// chrooted), a submission service as Debian's commented example has it
// and an amavis-style return port.
const extraServices = `submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
127.0.0.1:10025 inet n  -       y       -       -       smtpd
  -o smtpd_milters=
  -o receive_override_options=no_header_body_checks,no_milters
`

func newSetup(t *testing.T) *setup {
	// Not t.TempDir: its parent is 0700, and Postfix's user must be
	// able to reach the socket.
	base, err := os.MkdirTemp("", "vouch-doctor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	s := &setup{dir: filepath.Join(base, "etc"), queue: filepath.Join(base, "queue")}
	s.sock = filepath.Join(s.queue, "vouch", "vouch.sock")
	for _, d := range []string{s.dir, filepath.Dir(s.sock)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(base, 0o755)
	cert := filepath.Join(s.dir, "mail.pem")
	writeFile(t, cert, "not parsed by postconf\n")
	s.main = map[string]string{
		"compatibility_level":      "3.6",
		"queue_directory":          s.queue,
		"mynetworks":               "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128 192.0.2.0/24",
		"smtpd_milters":            "unix:/vouch/vouch.sock",
		"non_smtpd_milters":        "$smtpd_milters",
		"milter_default_action":    "tempfail",
		"milter_protocol":          "6",
		"smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
		"smtpd_tls_security_level": "may",
		"smtpd_tls_chain_files":    cert,
	}
	dist, err := os.ReadFile("/usr/share/postfix/master.cf.dist")
	if err != nil {
		t.Fatal(err)
	}
	s.dist, s.extra = string(dist), extraServices
	return s
}

func (s *setup) writePostfix(t *testing.T) {
	var b strings.Builder
	for k, v := range s.main {
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	writeFile(t, filepath.Join(s.dir, "main.cf"), b.String())
	writeFile(t, filepath.Join(s.dir, "master.cf"), s.dist+s.extra)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// serveVouch runs vouch's milter for cfg on the unix socket, group
// postfix, mode 0660, as README's Debian setup has it.
func serveVouch(t *testing.T, cfg *config.Config, sock string) {
	rt, err := daemon.Build(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := sockaddr.Listen(sockaddr.Address{Network: "unix", Addr: sock})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := user.LookupGroup("postfix")
	gid, _ := strconv.Atoi(g.Gid)
	os.Chown(sock, -1, gid)
	os.Chmod(sock, 0o660)
	os.Chown(filepath.Dir(sock), -1, gid)
	os.Chmod(filepath.Dir(sock), 0o750)
	srv := milter.NewServer(rt.Env, milter.Limits{ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	go srv.Serve(ln)
	t.Cleanup(func() { ln.Close(); srv.Shutdown(context.Background()) })
}

// vouchConfig writes a key for example.test (published in zone unless
// publish is false) and returns vouch's config for the setup.
func vouchConfig(t *testing.T, s *setup, zone *dnstest.Server) *config.Config {
	key, pemData, err := signer.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "mail.private")
	if err := os.WriteFile(keyFile, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	alg, p, _ := signer.PublicRecord(key.Public())
	if err := zone.Add(fmt.Sprintf(`mail._domainkey.example.test. 300 IN TXT "v=DKIM1; k=%s; p=%s"`, alg, p)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vouch.toml")
	writeFile(t, path, fmt.Sprintf(`listen = "unix:%s"
socket_group = "postfix"
socket_mode = "0660"
[dns]
servers = [%q]
timeout = "2s"
attempts = 1
[signing]
internal_hosts = ["127.0.0.1", "::1", "192.0.2.0/24"]
[[signing.key]]
domain = "example.test"
selector = "mail"
private_key = %q
`, s.sock, zone.Addr, keyFile))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDoctorPostfix: a correct Debian setup passes (exit 0); each case
// makes one mistake, and doctor names it with its fix.
func TestDoctorPostfix(t *testing.T) {
	postconf := requirePostconf(t)
	type want struct{ title, status, message, fix string }
	cases := []struct {
		name   string
		main   map[string]string
		master func(s *setup)
		vouch  func(cfg *config.Config)
		socket func(s *setup)
		// publishOther publishes another key under s=other.
		publishOther bool
		want         *want // nil: the correct setup, exit 0
	}{
		{name: "correct Debian setup"},
		{
			name: "non_smtpd_milters with the path outside the chroot (the old snippet)",
			main: map[string]string{"non_smtpd_milters": "unix:QUEUE/vouch/vouch.sock"},
			want: &want{"non_smtpd_milters (cleanup)", Fail, "leads to unix:QUEUEQUEUE/vouch/vouch.sock", "main.cf: non_smtpd_milters = unix:/vouch/vouch.sock"},
		},
		{
			name: "no non_smtpd_milters",
			main: map[string]string{"non_smtpd_milters": ""},
			want: &want{"non_smtpd_milters (cleanup)", Fail, "goes out unsigned", "non_smtpd_milters = unix:/vouch/vouch.sock"},
		},
		{
			name: "cleanup not chrooted, chroot path",
			master: func(s *setup) {
				s.dist = strings.Replace(s.dist, "cleanup   unix  n       -       y", "cleanup   unix  n       -       n", 1)
			},
			want: &want{"non_smtpd_milters (cleanup)", Fail, "leads to unix:/vouch/vouch.sock", "non_smtpd_milters = unix:QUEUE/vouch/vouch.sock"},
		},
		{
			name: "smtpd_milters missing",
			main: map[string]string{"smtpd_milters": "", "non_smtpd_milters": "unix:/vouch/vouch.sock"},
			want: &want{"smtpd_milters of smtp/inet", Fail, "bypasses vouch", "main.cf: smtpd_milters = unix:/vouch/vouch.sock"},
		},
		{
			name: "submission overrides smtpd_milters",
			master: func(s *setup) {
				s.extra = strings.Replace(s.extra, "-o smtpd_sasl_auth_enable=yes", "-o smtpd_sasl_auth_enable=yes\n  -o smtpd_milters=inet:localhost:8891", 1)
			},
			want: &want{"smtpd_milters of submission/inet", Fail, "inet:localhost:8891", "master.cf, submission/inet: -o smtpd_milters=unix:/vouch/vouch.sock"},
		},
		{
			name: "milter_protocol 2",
			main: map[string]string{"milter_protocol": "2"},
			want: &want{"milter_protocol", Fail, "negotiation fails", "milter_protocol = 6"},
		},
		{
			name: "milter_default_action reject",
			main: map[string]string{"milter_default_action": "reject"},
			want: &want{"milter_default_action = reject", Warn, "refused", "milter_default_action = tempfail"},
		},
		{
			name: "milter_command_timeout below screen.budget",
			main: map[string]string{"milter_command_timeout": "10s"},
			want: &want{"milter timeouts", Fail, "screen.budget 20s ≥ milter_command_timeout 10s", "lower vouch's budgets"},
		},
		{
			name: "mynetworks has a network vouch does not sign for",
			main: map[string]string{"mynetworks": "127.0.0.0/8 [::1]/128 192.0.2.0/24 10.20.0.0/16"},
			want: &want{"internal hosts cover mynetworks", Warn, "10.20.0.0/16", `add ["10.20.0.0/16"]`},
		},
		{
			name:  "internal_hosts with 0.0.0.0/0",
			vouch: func(cfg *config.Config) { cfg.Signing.InternalHosts = append(cfg.Signing.InternalHosts, "0.0.0.0/0") },
			want:  &want{"internal hosts", Fail, "0.0.0.0/0", "list only your own networks"},
		},
		{
			name:  "internal_hosts with a public /8",
			vouch: func(cfg *config.Config) { cfg.Signing.InternalHosts = append(cfg.Signing.InternalHosts, "25.0.0.0/8") },
			want:  &want{"internal hosts", Fail, "25.0.0.0/8", "list only your own networks"},
		},
		{
			name: "open relay",
			main: map[string]string{"smtpd_relay_restrictions": "permit_mynetworks, permit"},
			want: &want{"no open relay: smtp/inet", Fail, "relays for anyone", "reject_unauth_destination"},
		},
		{
			name: "submission without AUTH required",
			master: func(s *setup) {
				s.extra = strings.Replace(s.extra, "-o smtpd_client_restrictions=permit_sasl_authenticated,reject", "-o smtpd_client_restrictions=", 1)
			},
			want: &want{"SMTP AUTH on submission/inet", Fail, "clients that do not log in", "-o smtpd_client_restrictions=permit_sasl_authenticated,reject"},
		},
		{
			name: "submission without SASL",
			master: func(s *setup) {
				s.extra = strings.Replace(s.extra, "-o smtpd_sasl_auth_enable=yes", "-o smtpd_sasl_auth_enable=no", 1)
			},
			want: &want{"SMTP AUTH on submission/inet", Fail, "does not offer SMTP AUTH", "smtpd_sasl_auth_enable=yes"},
		},
		{
			name: "no TLS",
			main: map[string]string{"smtpd_tls_security_level": "none"},
			want: &want{"TLS on smtp/inet", Warn, "offers no TLS", "smtpd_tls_security_level = may"},
		},
		{
			name:   "socket Postfix may not write to",
			socket: func(s *setup) { os.Chmod(s.sock, 0o600) },
			want:   &want{"Postfix may connect", Fail, "cannot connect", `socket_mode = "0660"`},
		},
		{
			name:         "published key is another key",
			vouch:        func(cfg *config.Config) { cfg.Signing.Keys[0].Selector = "other" },
			publishOther: true,
			want:         &want{"self-test example.test", Fail, "does not verify against the published key", "publish the record"},
		},
		{
			name:  "DNS unreachable: verified against the local key",
			vouch: func(cfg *config.Config) { cfg.DNS.Servers = []string{deadServer(t)} },
			want:  &want{"self-test example.test", Warn, "verified against the local key only", ""},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t)
			zone := dnstest.New(t)
			cfg := vouchConfig(t, s, zone)
			if tc.vouch != nil {
				tc.vouch(cfg)
			}
			if tc.publishOther {
				other, _, _ := signer.GenerateKey("ed25519", 0)
				alg, p, _ := signer.PublicRecord(other.Public())
				zone.Add(fmt.Sprintf(`other._domainkey.example.test. 300 IN TXT "v=DKIM1; k=%s; p=%s"`, alg, p))
			}
			for k, v := range tc.main {
				s.main[k] = strings.ReplaceAll(v, "QUEUE", s.queue)
			}
			if tc.master != nil {
				tc.master(s)
			}
			s.writePostfix(t)
			serveVouch(t, cfg, s.sock)
			if tc.socket != nil {
				tc.socket(s)
			}
			res, err := resolver.New(resolver.Config{Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout, Attempts: cfg.DNS.Attempts})
			if err != nil {
				t.Fatal(err)
			}
			rep := Run(context.Background(), Options{Config: cfg, Signer: daemon.SignerConfig(cfg), Postconf: postconf, PostfixDir: s.dir, SelfTest: true, Resolver: res})
			dump := func() string {
				var b strings.Builder
				for _, it := range rep.Items {
					fmt.Fprintf(&b, "  %s %s: %s [fix: %s]\n", it.Status, it.Title, it.Message, it.Fix)
				}
				return b.String()
			}
			if tc.want == nil {
				if rep.Exit != 0 {
					t.Fatalf("exit %d for the correct setup:\n%s", rep.Exit, dump())
				}
				for _, title := range []string{"smtpd_milters of smtp/inet", "smtpd_milters of submission/inet", "non_smtpd_milters (cleanup)", "self-test example.test", "Postfix may connect"} {
					if find(rep, title) == nil {
						t.Errorf("no %q item:\n%s", title, dump())
					}
				}
				return
			}
			w := tc.want
			w.message = strings.ReplaceAll(w.message, "QUEUE", s.queue)
			w.fix = strings.ReplaceAll(w.fix, "QUEUE", s.queue)
			it := find(rep, w.title)
			if it == nil {
				t.Fatalf("no item %q:\n%s", w.title, dump())
			}
			if it.Status != w.status || !strings.Contains(it.Message, w.message) || !strings.Contains(it.Fix, w.fix) {
				t.Fatalf("item %q: got %s %q fix %q; want %s with %q, fix %q\n%s", w.title, it.Status, it.Message, it.Fix, w.status, w.message, w.fix, dump())
			}
			wantExit := map[string]int{Warn: 1, Fail: 2}[w.status]
			if rep.Exit != wantExit {
				t.Fatalf("exit %d, want %d (one mistake only):\n%s", rep.Exit, wantExit, dump())
			}
		})
	}
}

func find(rep Report, title string) *Item {
	for i := range rep.Items {
		if rep.Items[i].Title == title && rep.Items[i].Status != OK {
			return &rep.Items[i]
		}
	}
	for i := range rep.Items {
		if rep.Items[i].Title == title {
			return &rep.Items[i]
		}
	}
	return nil
}

// deadServer is a loopback UDP address where nothing answers.
func deadServer(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String() // bound, never read: queries time out
}
