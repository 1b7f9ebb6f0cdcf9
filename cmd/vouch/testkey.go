package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"vouch/internal/config"
	"vouch/internal/daemon"
	"vouch/internal/domaincheck"
	"vouch/internal/resolver"
	"vouch/signer"
)

// Exit statuses of testkey, as opendkim-testkey uses them (sysexits.h).
const (
	exitKeyOK       = 0
	exitUsage       = 64 // EX_USAGE
	exitDataErr     = 65 // EX_DATAERR: the record does not parse, is revoked, or is not our key
	exitNoInput     = 66 // EX_NOINPUT: the private key file cannot be read
	exitUnavailable = 69 // EX_UNAVAILABLE: no record published
	exitTempFail    = 75 // EX_TEMPFAIL: DNS failure, try again
)

func testkeyCommand(args []string) int { return runTestkey(args, os.Stdout, os.Stderr) }

// runTestkey is `vouch testkey`: opendkim-testkey's check that the key
// record in DNS is the public half of a private key. With -d, -s and -k
// it tests that key; without them every key of the configuration. One
// line per key on stdout; the exit status is the worst one: 65 (data
// error) over 69 (not published) over 75 (DNS failure) over 0.
func runTestkey(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("testkey", help{
		usage: "vouch testkey [-config FILE] [-d DOMAIN -s SELECTOR -k KEYFILE]",
		about: "Checks that the DKIM key record published at SELECTOR._domainkey.DOMAIN is\n" +
			"the public half of the private key, as opendkim-testkey does. Without -d,\n" +
			"-s and -k, every key of the configuration is tested.",
		exits: "0 key OK\n65 record unusable or not this key\n66 key file unreadable\n" +
			"69 record not published\n75 temporary DNS failure\n64 also: the configuration is invalid or has no keys",
		example:   "vouch testkey -d example.com -s mail -k /etc/vouch/keys/example.com/mail.private",
		usageCode: exitUsage,
	}, stdout, stderr)
	domain := fs.String("d", "", "signing domain")
	selector := fs.String("s", "", "selector")
	keyPath := fs.String("k", "", "private key file (PEM)")
	configPath := fs.String("config", "", "config file: DNS servers, and the keys to test without -d/-s/-k (default: /etc/vouch/vouch.toml if it exists, else the embedded defaults)")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	single := *domain != "" || *selector != "" || *keyPath != ""
	if single && (*domain == "" || *selector == "" || *keyPath == "") {
		return fs.usageError("-d, -s and -k go together: give all three, or none to test the configured keys")
	}
	cfg, err := daemon.Load(*configPath)
	if err != nil {
		return fail("testkey", err, exitUsage)
	}
	res, err := configResolver(cfg)
	if err != nil {
		return fail("testkey", err, exitUsage)
	}
	var keys []domaincheck.Key
	if single {
		// An explicit key file is tested whatever its mode: the admin
		// named it.
		k, _, err := signer.LoadKeyFile(*keyPath, false)
		if err != nil {
			return fail("testkey", err, exitNoInput)
		}
		keys = []domaincheck.Key{{Domain: strings.ToLower(strings.TrimSuffix(*domain, ".")), Selector: *selector, Signer: k, Source: *keyPath}}
	} else {
		var warnings []string
		keys, warnings, err = configKeys(cfg)
		for _, w := range warnings {
			fmt.Fprintf(stderr, "vouch testkey: %s\n", w)
		}
		if err != nil {
			return fail("testkey", err, exitNoInput)
		}
		if len(keys) == 0 {
			fmt.Fprintln(stderr, "vouch testkey: no keys in the configuration ([[signing.key]] or key_table)")
			return exitUsage
		}
	}
	worst := exitKeyOK
	for _, k := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		kc := domaincheck.CheckKey(ctx, res, k.Domain, k.Selector, k.Signer)
		cancel()
		if k.Domain == "%" {
			kc.Message = "the domain is the From domain (KeyTable \"%\"): give -d DOMAIN -s " + k.Selector + " -k FILE to test one"
		}
		msg := kc.Message
		if kc.Result == domaincheck.KeyOK && kc.Warning != "" {
			msg += "; warning: " + kc.Warning
		}
		fmt.Fprintf(stdout, "%s (%s): %s\n", kc.Name, k.Source, msg)
		worst = worseExit(worst, keyExit[kc.Result])
	}
	return worst
}

// keyExit is opendkim-testkey's exit status for each result.
var keyExit = map[domaincheck.KeyResult]int{
	domaincheck.KeyOK:       exitKeyOK,
	domaincheck.KeyUnusable: exitDataErr,
	domaincheck.KeyMissing:  exitUnavailable,
	domaincheck.KeyTempFail: exitTempFail,
}

// worseExit orders testkey's statuses: a wrong or broken record first,
// then a missing one, then a DNS failure.
func worseExit(a, b int) int {
	rank := map[int]int{exitKeyOK: 0, exitTempFail: 1, exitUnavailable: 2, exitDataErr: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// configResolver builds the resolver of a configuration's [dns] section.
func configResolver(cfg *config.Config) (*resolver.Resolver, error) {
	// A small cache: the checks ask some names twice.
	return resolver.New(resolver.Config{Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout, Attempts: cfg.DNS.Attempts, CacheSize: 1000})
}

// configKeys returns every key of the configuration the signer loads at
// start (KeyTable rows with a fixed key and [[signing.key]] entries).
func configKeys(cfg *config.Config) ([]domaincheck.Key, []string, error) {
	sg, _, err := signer.New(daemon.SignerConfig(cfg))
	if err != nil {
		return nil, nil, err
	}
	defer sg.Close()
	var out []domaincheck.Key
	for _, k := range sg.Keys() {
		out = append(out, domaincheck.Key{Domain: k.Domain, Selector: k.Selector, Signer: k.Signer, Source: k.Source})
	}
	var notes []string
	if strings.Contains(cfg.Signing.KeyTable, "%") || strings.HasPrefix(cfg.Signing.KeyTable, "ldap") {
		notes = append(notes, "keys loaded per message (a % in the key path, or keys in LDAP) are not listed")
	}
	return out, notes, nil
}
