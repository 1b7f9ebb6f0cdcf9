package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"vouch/internal/config"
	"vouch/milter"
)

// Options are serve's command-line settings.
type Options struct {
	ConfigPath      string // "" means /etc/vouch/vouch.toml if it exists, else the embedded defaults
	ShutdownTimeout time.Duration
}

// Load reads the configuration serve would use.
func Load(path string) (*config.Config, error) {
	if path == "" {
		return config.LoadDefault()
	}
	return config.Load(path)
}

// Serve runs the daemon until SIGTERM or SIGINT. SIGHUP reloads the
// configuration: if anything in it is wrong, the old one stays in force.
func Serve(opts Options) error {
	cfg, err := Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	log := NewLogger(cfg, os.Stderr)
	rt, err := Build(cfg, log)
	if err != nil {
		return err
	}
	addr, _ := milter.ParseAddress(cfg.Listen)
	ln, err := milter.Listen(addr)
	if err != nil {
		return err
	}
	srv := milter.NewServer(rt.Env)
	rt.start()
	logStart(log, rt, addr)

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
				rt = reload(log, opts.ConfigPath, rt, srv)
				continue
			}
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
func reload(log *slog.Logger, path string, old *Runtime, srv *milter.Server) *Runtime {
	cfg, err := Load(path)
	if err == nil {
		var rt *Runtime
		if rt, err = Build(cfg, log); err == nil {
			if cfg.Listen != old.Config.Listen {
				log.Warn("reload: listen changed; it takes effect at the next restart", "listen", old.Config.Listen, "configured", cfg.Listen)
			}
			for _, w := range rt.Warnings {
				log.Warn(w)
			}
			srv.SetEnv(rt.Env)
			old.close()
			rt.start()
			log.Info("reloaded", "config", configName(cfg))
			return rt
		}
	}
	log.Error("reload failed; the previous configuration stays in force", "err", err.Error())
	return old
}

func configName(cfg *config.Config) string {
	if cfg.Path == "" {
		return "(embedded defaults)"
	}
	return cfg.Path
}

func logStart(log *slog.Logger, rt *Runtime, addr milter.Address) {
	cfg := rt.Config
	if cfg.Path == "" {
		log.Info("no config file given and " + config.DefaultPath + " does not exist: running on the embedded defaults")
	}
	log.Info("vouch listening", "listen", cfg.Listen, "socket", addr.String(), "config", configName(cfg),
		"dns", fmt.Sprint(rt.Resolver.Servers()), "screen", screenSummary(cfg))
	for _, w := range rt.Warnings {
		log.Warn(w)
	}
}

func screenSummary(cfg *config.Config) string {
	if !cfg.Screen.Enabled {
		return "off"
	}
	return cfg.Screen.Mode
}
