package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"vouch/internal/config"
	"vouch/internal/daemon"
	"vouch/signer"
)

// nextKeyFlags fills in genkey's selector and directory for -next: the
// selector from the date (unless -s was given), the directory of the
// domain's current [[signing.key]] (unless -D was given). It refuses a
// domain without a [[signing.key]] of that key type, or one whose key
// already names a successor.
func nextKeyFlags(fs *flag.FlagSet, configPath, domain, alg string, selector, dir *string, now time.Time) (*config.Config, error) {
	cfg, err := daemon.Load(configPath)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cur, ok := currentKey(cfg, domain, alg)
	if !ok {
		return nil, fmt.Errorf("-next: no %s [[signing.key]] for %s in %s: make a first key without -next", alg, domain, cfgName(cfg))
	}
	if cur.NextSelector != "" {
		return nil, fmt.Errorf("-next: the %s key of %s already has next_selector = %q: finish that rotation first (vouch keys)", alg, domain, cur.NextSelector)
	}
	if !set["s"] {
		*selector = now.UTC().Format(cfg.Rotation.SelectorPattern)
		if alg == "ed25519" {
			*selector += "-ed"
		}
	}
	if *selector == cur.Selector {
		return nil, fmt.Errorf("-next: selector %q is the current one: give another with -s", *selector)
	}
	if !set["D"] {
		*dir = filepath.Dir(cur.PrivateKey)
	}
	return cfg, nil
}

// currentKey is the domain's [[signing.key]] with a key of type alg.
func currentKey(cfg *config.Config, domain, alg string) (config.Key, bool) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, k := range cfg.Signing.Keys {
		if strings.ToLower(strings.TrimSuffix(k.Domain, ".")) != domain {
			continue
		}
		key, _, err := signer.LoadKeyFile(k.PrivateKey, false)
		if err == nil && (signer.Algorithm(key) == "ed25519") == (alg == "ed25519") {
			return k, true
		}
	}
	return config.Key{}, false
}

// printNextKeyLines prints what to add to the [[signing.key]] and what
// happens next.
func printNextKeyLines(w io.Writer, cfg *config.Config, selector, keyPath string) {
	abs, err := filepath.Abs(keyPath)
	if err != nil {
		abs = keyPath
	}
	fmt.Fprintf(w, "\nadd these two lines to the domain's [[signing.key]] in %s and reload vouch:\n", cfgName(cfg))
	fmt.Fprintf(w, "  next_selector = %q\n  next_private_key = %q\n", selector, abs)
	fmt.Fprintf(w, "\nvouch keeps signing with the current key until the record above has been\n"+
		"published and matching for %s (rotation.publish_delay), then switches by\n"+
		"itself. `vouch keys` shows where it stands and what to publish or remove.\n", cfg.Rotation.PublishDelay)
}

func cfgName(cfg *config.Config) string {
	if cfg.Path == "" {
		return "your config file"
	}
	return cfg.Path
}
