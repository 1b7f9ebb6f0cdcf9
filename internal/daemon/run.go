package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"vouch/internal/config"
	"vouch/internal/dmarcreport"
	"vouch/internal/hijack"
	"vouch/internal/metrics"
	"vouch/internal/resolver"
	"vouch/internal/sockaddr"
	"vouch/milter"
)

// Options are serve's command-line settings.
type Options struct {
	ConfigPath      string        // "" means /etc/vouch/vouch.toml if it exists, else the embedded defaults
	ShutdownTimeout time.Duration // 0: limits.shutdown_timeout
	Version         string
}

// Load reads the configuration serve would use and checks all of it: the
// file (config) and what its settings mean to the screen, verification
// and hijack detection (checkSettings). The error lists every problem.
func Load(path string) (*config.Config, error) {
	load := config.LoadDefault
	if path != "" {
		load = func() (*config.Config, error) { return config.Load(path) }
	}
	cfg, err := load()
	if cfg == nil {
		return nil, err
	}
	return cfg, errors.Join(err, checkSettings(cfg))
}

// Check is serve -check: it reads the configuration at path and loads
// everything it names, and reports the problems of both in one error. A
// file that cannot be read into a configuration at all (TOML syntax,
// unknown keys, wrong types) stops it before any key is looked at.
func Check(path string, logTo io.Writer) (*Runtime, error) {
	cfg, err := Load(path)
	if cfg == nil {
		return nil, err
	}
	return Build(cfg, NewLogger(cfg, logTo), nil) // Build checks what Load did
}

// check is Load's checks for a configuration already read.
func check(cfg *config.Config) error {
	return errors.Join(cfg.Validate(), checkSettings(cfg))
}

// Serve runs the daemon until SIGTERM or SIGINT. SIGHUP reloads the
// configuration: if anything in it is wrong, the old one stays in force.
func Serve(opts Options) error {
	cfg, err := Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	log := NewLogger(cfg, os.Stderr)
	m := metrics.New(opts.Version)
	rt, err := Build(cfg, log, m)
	if err != nil {
		return err
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = cfg.Limits.ShutdownTimeout
	}
	addr, _ := sockaddr.Parse(cfg.Listen)
	ln, err := sockaddr.Listen(addr)
	if err != nil {
		return err
	}
	if err := socketPermissions(cfg, addr); err != nil {
		ln.Close()
		return err
	}
	if cfg.MetricsListen != "" {
		if err := serveMetrics(log, cfg.MetricsListen, m); err != nil {
			ln.Close()
			return err
		}
	}
	accounts := &accountGuard{log: log, m: m}
	if err := accounts.update(cfg); err != nil {
		ln.Close()
		return err
	}
	defer accounts.close()
	rt.Env.Accounts = accounts.current()
	reports := &dmarcReports{log: log, m: m}
	if err := reports.update(cfg); err != nil {
		ln.Close()
		return err
	}
	defer reports.close() // after the sessions: the last rows and reports reach the store
	reports.setEnv(rt.Env)
	srv := milter.NewServer(rt.Env, milter.Limits{
		MaxSessions: cfg.Limits.MaxSessions, PacketMemory: cfg.Limits.MaxPacketMemory,
		ReadTimeout: cfg.Limits.ReadTimeout, WriteTimeout: cfg.Limits.WriteTimeout,
	})
	rt.start()
	logStart(log, rt, addr)
	raiseFileLimit(log, cfg.Limits.MaxSessions)
	if err := notify("READY=1\nSTATUS=listening on " + addr.String()); err != nil {
		log.Warn("sd_notify", "err", err)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-serveErr:
			rt.close()
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				notify(reloadingState())
				rt = reload(log, opts.ConfigPath, rt, srv, m, accounts, reports)
				notify("READY=1")
				continue
			}
			notify("STOPPING=1")
			log.Info("shutting down: no new connections, waiting for open sessions", "signal", sig.String(), "sessions", srv.Sessions(), "timeout", opts.ShutdownTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
			err := srv.Shutdown(ctx)
			cancel()
			rt.close()
			if addr.Network == "unix" {
				os.Remove(addr.Addr)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				log.Warn("shutdown timeout: closed sessions still open", "timeout", opts.ShutdownTimeout)
				return nil
			}
			log.Info("stopped")
			return nil
		}
	}
}

// reload builds a new runtime from the config file and swaps it in; on any
// error the old one stays and the error is logged with file, line and
// reason. Sessions already open keep the runtime they started with.
func reload(log *slog.Logger, path string, old *Runtime, srv *milter.Server, m *metrics.Metrics, accounts *accountGuard, reports *dmarcReports) *Runtime {
	cfg, err := Load(path)
	if err == nil {
		var rt *Runtime
		if rt, err = Build(cfg, log, m); err == nil {
			err = accounts.update(cfg)
		}
		if err == nil {
			err = reports.update(cfg)
		}
		if err == nil {
			rt.Env.Accounts = accounts.current()
			reports.setEnv(rt.Env)
			if cfg.Listen != old.Config.Listen {
				log.Warn("reload: listen changed; it takes effect at the next restart", "listen", old.Config.Listen, "configured", cfg.Listen)
			}
			for _, w := range rt.Warnings {
				log.Warn(w)
			}
			srv.SetEnv(rt.Env)
			old.close()
			rt.start()
			log.Info("reloaded", "config", cfg.Name())
			m.Reload(true)
			return rt
		}
	}
	m.Reload(false)
	log.Error("reload failed; the previous configuration stays in force", "err", err.Error())
	return old
}

// raiseFileLimit makes sure the soft limit on open files is the hard
// limit (Go's runtime raises it to the hard limit minus one at start
// since Go 1.19; if that did not happen, vouch does it), logs it, and
// warns when the connections max_sessions allows would not fit: every
// milter connection is a descriptor, and beyond the limit accept fails
// with EMFILE (vouch retries, but the MTA waits).
func raiseFileLimit(log *slog.Logger, maxSessions int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("open files limit", "err", err.Error())
		return
	}
	if lim.Cur+1 < lim.Max {
		soft := lim.Cur
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("open files limit: cannot raise the soft limit to the hard limit", "soft", soft, "hard", lim.Max, "err", err.Error())
			lim.Cur = soft
		}
	}
	// Twice max_sessions (connections beyond max_sessions are still
	// answered) plus some for DNS, Redis, LDAP, keys and logs.
	if need := 2*uint64(maxSessions) + 64; lim.Cur < need {
		log.Warn("open files limit below what max_sessions needs: raise LimitNOFILE (systemd) or ulimit -Hn", "limit", lim.Cur, "want", need, "max_sessions", maxSessions)
		return
	}
	log.Info("open files limit", "limit", lim.Cur)
}

// socketPermissions applies socket_mode and socket_group to a unix socket.
func socketPermissions(cfg *config.Config, addr sockaddr.Address) error {
	if addr.Network != "unix" {
		return nil
	}
	if cfg.SocketGroup != "" {
		g, err := user.LookupGroup(cfg.SocketGroup)
		if err != nil {
			return fmt.Errorf("socket_group: %w", err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(addr.Addr, -1, gid); err != nil {
			return fmt.Errorf("socket_group %s: %w", cfg.SocketGroup, err)
		}
	}
	if cfg.SocketMode != "" {
		mode, _ := strconv.ParseUint(cfg.SocketMode, 8, 32)
		if err := os.Chmod(addr.Addr, os.FileMode(mode)); err != nil {
			return fmt.Errorf("socket_mode: %w", err)
		}
	}
	return nil
}

// serveMetrics serves /metrics on addr in the background.
func serveMetrics(log *slog.Logger, addr string, m *metrics.Metrics) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics_listen: %w", err)
	}
	if host, _, _ := net.SplitHostPort(addr); host != "localhost" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			log.Warn("metrics are served beyond loopback", "metrics_listen", addr)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return nil
}

func logStart(log *slog.Logger, rt *Runtime, addr sockaddr.Address) {
	cfg := rt.Config
	if cfg.Path == "" {
		log.Info("no config file given and " + config.DefaultPath + " does not exist: running on the embedded defaults")
	}
	log.Info("vouch listening", "listen", cfg.Listen, "socket", addr.String(), "config", cfg.Name(),
		"dns", fmt.Sprint(rt.Resolver.Servers()), "screen", screenSummary(cfg))
	if r := cfg.DMARCReports; r.Enabled {
		send := "off"
		if r.Send {
			send = "daily at " + r.SendAt + " UTC via " + r.SMTP
		}
		where := r.Store
		if r.Store == "bolt" {
			where += " " + r.Path
		}
		log.Info("dmarc reports", "store", where, "send", send, "rua_mailboxes", strings.Join(r.RUAMailboxes, ","))
	}
	for _, w := range rt.Warnings {
		log.Warn(w)
	}
}

func screenSummary(cfg *config.Config) string {
	if !cfg.Screen.Enabled {
		return "off"
	}
	return cfg.ScreenMode()
}

// accountGuard holds the one hijack.Guard of the process: it owns the
// admin socket and the in-memory counters, so a reload keeps it unless
// the [hijack] section changed.
type accountGuard struct {
	log   *slog.Logger
	m     *metrics.Metrics
	cfg   hijack.Config
	guard *hijack.Guard
}

func (a *accountGuard) update(cfg *config.Config) error {
	hc := HijackConfig(cfg)
	if a.guard != nil && reflect.DeepEqual(hc, a.cfg) {
		return nil
	}
	a.close()
	g, err := hijack.New(hc, a.log)
	if err != nil {
		return fmt.Errorf("hijack: %w", err)
	}
	a.cfg, a.guard = hc, g
	if g != nil {
		a.m.SetAccountStats(func() map[string]uint64 {
			s := g.Stats()
			return map[string]uint64{
				"limited": s.Limited, "frozen_refused": s.FrozenRefused, "freezes": s.Freezes,
				"notifications": s.Notifications, "notify_errors": s.NotifyErrors,
				"redis_errors": s.RedisErrors, "redis_fallbacks": s.RedisFallbacks,
				"redis_refused": s.RedisRefused, "state_errors": s.StateErrors,
			}
		})
	}
	return nil
}

// current is the guard for milter.Env (nil when disabled).
func (a *accountGuard) current() milter.AccountGuard {
	if a.guard == nil {
		return nil
	}
	return a.guard
}

func (a *accountGuard) close() {
	if a.guard != nil {
		a.guard.Close()
		a.guard = nil
	}
}

// dmarcReports holds the process's DMARC report store, the recorder that
// writes inbound rows to it and the capture that reads incoming reports
// ([dmarc_reports]). A reload keeps them while their settings stay the
// same: the store is opened once (bbolt locks its file), and the buffered
// rows survive.
type dmarcReports struct {
	log       *slog.Logger
	m         *metrics.Metrics
	storeOpts dmarcreport.StoreOptions
	store     dmarcreport.Store // nil: [dmarc_reports] is off
	recorder  *dmarcreport.Recorder
	capOpts   dmarcreport.CaptureOptions
	capture   *dmarcreport.Capture
	keep      atomic.Int64  // keep_received, read by pruneLoop
	stopPrune chan struct{} // closed with the store

	// The sender mails the outgoing reports at send_at (Sender.Run);
	// stopSender ends it and waits.
	sendKey    any // what the running sender was made from
	stopSender func()
}

// update brings the store, recorder and capture in line with cfg. A store
// that cannot be opened is an error naming it, and what was there stays.
func (d *dmarcReports) update(cfg *config.Config) error {
	r := cfg.DMARCReports
	if !r.Enabled {
		d.close()
		return nil
	}
	so := ReportStoreOptions(cfg)
	if d.store == nil || !reflect.DeepEqual(so, d.storeOpts) {
		st, err := openReportStore(so)
		if err != nil {
			return err
		}
		d.close()
		d.store, d.storeOpts, d.stopPrune = st, so, make(chan struct{})
		go d.pruneLoop(st, d.stopPrune)
	}
	d.keep.Store(int64(r.KeepReceived))
	switch {
	case r.Send && d.recorder == nil:
		d.recorder = dmarcreport.NewRecorder(d.store, d.log, dmarcreport.RecorderOptions{})
		d.m.SetDMARCReportRows(d.recorder.Stats)
	case !r.Send && d.recorder != nil:
		d.recorder.Close()
		d.recorder = nil
	}
	if err := d.updateSender(cfg); err != nil {
		return err
	}
	co := ReportCaptureOptions(cfg)
	if d.capture != nil && !reflect.DeepEqual(co, d.capOpts) {
		d.capture.Close()
		d.capture = nil
	}
	if d.capture == nil && len(co.Mailboxes) > 0 {
		d.capture, d.capOpts = dmarcreport.NewCapture(d.store, d.log, co), co
	}
	return nil
}

// updateSender starts the daily sending when send is on, and restarts it
// when its settings, the DNS settings or the store change.
func (d *dmarcReports) updateSender(cfg *config.Config) error {
	if !cfg.DMARCReports.Send {
		d.endSender()
		return nil
	}
	key := struct {
		send  dmarcreport.SenderOptions
		dns   config.DNS
		store dmarcreport.Store
	}{ReportSenderOptions(cfg), cfg.DNS, d.store}
	if d.stopSender != nil && reflect.DeepEqual(key, d.sendKey) {
		return nil
	}
	s, err := NewReportSender(cfg, d.store, d.log, nil)
	if err != nil {
		return err
	}
	d.endSender()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	d.sendKey, d.stopSender = key, func() { cancel(); <-done }
	return nil
}

func (d *dmarcReports) endSender() {
	if d.stopSender != nil {
		d.stopSender()
		d.stopSender, d.sendKey = nil, nil
	}
}

// NewReportSender is the [dmarc_reports] sender on store, for serve and
// `vouch reports send`; now is its clock (nil: time.Now). Its resolver is
// its own, uncached: a report period's rua= checks are a few lookups a
// day.
func NewReportSender(cfg *config.Config, store dmarcreport.Store, log *slog.Logger, now func() time.Time) (*dmarcreport.Sender, error) {
	res, err := resolver.New(resolver.Config{Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout, Attempts: cfg.DNS.Attempts})
	if err != nil {
		return nil, err
	}
	opts := ReportSenderOptions(cfg)
	opts.Now = now
	s, err := dmarcreport.NewSender(opts, store, res, log)
	if err != nil {
		return nil, fmt.Errorf("[dmarc_reports]: %w", err)
	}
	return s, nil
}

// openReportStore opens the store. The bolt store makes its file at the
// first write: a directory that is not there is caught now, at start,
// rather than as lost rows later.
func openReportStore(so dmarcreport.StoreOptions) (dmarcreport.Store, error) {
	if so.Kind == "bolt" {
		dir := filepath.Dir(so.Path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("dmarc_reports.path: cannot open the bolt store %s: directory %s does not exist", so.Path, dir)
		}
	}
	st, err := dmarcreport.OpenStore(so)
	if err != nil {
		return nil, fmt.Errorf("cannot open the DMARC report store: %w", err)
	}
	return st, nil
}

// pruneLoop drops received reports older than keep_received, at start
// and every hour, until stop is closed.
func (d *dmarcReports) pruneLoop(st dmarcreport.Store, stop chan struct{}) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if keep := time.Duration(d.keep.Load()); keep > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := st.Prune(ctx, time.Now().Add(-keep)); err != nil {
				d.log.Warn("dmarc_reports: dropping received reports older than keep_received", "err", err.Error())
			}
			cancel()
		}
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}

// setEnv gives the milter the recorder and the capture (nil when off).
func (d *dmarcReports) setEnv(env *milter.Env) {
	env.Reports, env.Capture = d.recorder, d.capture
}

// close writes what the recorder holds, reads the queued report
// messages, and closes the store.
func (d *dmarcReports) close() {
	d.endSender()
	if d.recorder != nil {
		d.recorder.Close()
		d.recorder = nil
	}
	if d.capture != nil {
		d.capture.Close()
		d.capture = nil
	}
	if d.store != nil {
		close(d.stopPrune)
		if err := d.store.Close(); err != nil {
			d.log.Error("dmarc_reports: closing the store", "err", err.Error())
		}
		d.store = nil
	}
}
