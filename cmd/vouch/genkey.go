package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"vouch/internal/config"
	"vouch/internal/mailtext"
	"vouch/signer"
)

func runGenkey(args []string) int {
	fs := stdFlags("genkey", help{
		usage: "vouch genkey -d DOMAIN [-s SELECTOR] [-D DIR] [-b BITS] [-t rsa|ed25519]\n" +
			"vouch genkey -next -d DOMAIN [-config FILE] [-t rsa|ed25519] [-D DIR]",
		about: "Writes SELECTOR.private (mode 0600) and SELECTOR.txt (the DNS record), as opendkim-genkey does.\n" +
			"RSA keys have at least 1024 bits (below 2048 is warned about: receivers such as Gmail want 2048).\n" +
			"With -next, the key is the successor of the domain's current key: see README \"Rotating keys\".",
		exits:   "0 key written\n1 a file exists (use -f) or could not be written",
		example: "vouch genkey -d example.com -s mail -D /etc/vouch/keys/example.com",
	})
	domain := fs.String("d", "", "domain the key signs for (required)")
	selector := fs.String("s", "default", "selector")
	dir := fs.String("D", ".", "directory for SELECTOR.private and SELECTOR.txt")
	bits := fs.Int("b", 2048, "RSA key size in bits")
	alg := fs.String("t", "rsa", "key type: rsa or ed25519")
	appendDomain := fs.Bool("a", false, "write the owner name as SELECTOR._domainkey.DOMAIN.")
	restrict := fs.Bool("r", false, "restrict the key to email (s=email)")
	testing := fs.Bool("test", false, "mark the record as testing (t=y)")
	force := fs.Bool("f", false, "overwrite existing files")
	next := fs.Bool("next", false, "make the next key of the domain's [[signing.key]] for a rotation: the selector comes from the date\n(rotation.selector_pattern, \"-ed\" added for ed25519), DIR defaults to the current key's directory, and\nthe two config lines to add are printed")
	configPath := fs.String("config", "", "with -next: the config file (default: /etc/vouch/vouch.toml if it exists)")
	if _, code, ok := fs.parse(args); !ok {
		return code
	}
	if *domain == "" {
		return fs.usageError("-d DOMAIN is required")
	}
	d, err := mailtext.AuthorDomain(*domain)
	if err != nil {
		return fs.usageError("-d: %s", strings.TrimPrefix(err.Error(), "From "))
	}
	*domain = d
	if *alg == "rsa" && *bits < signer.MinRSABits {
		return fs.usageError("-b %d: RSA keys need at least %d bits (RFC 8301)", *bits, signer.MinRSABits)
	}
	var nextCfg *config.Config
	if *next {
		if nextCfg, err = nextKeyFlags(fs.FlagSet, *configPath, *domain, *alg, selector, dir, time.Now()); err != nil {
			return fail("genkey", err, 2)
		}
	}
	if !validSelector(*selector) {
		return fs.usageError("-s %q is not a valid selector (DNS labels of letters, digits and hyphens, 63 octets at most each, separated by dots)", *selector)
	}
	if *alg == "rsa" && *bits < 2048 {
		fmt.Fprintf(os.Stderr, "vouch genkey: warning: a %d-bit RSA key is weak; receivers such as Gmail want 2048 bits\n", *bits)
	}
	keyPath := filepath.Join(*dir, *selector+".private")
	txtPath := filepath.Join(*dir, *selector+".txt")
	if !*force {
		for _, p := range []string{keyPath, txtPath} {
			if _, err := os.Lstat(p); err == nil {
				return fail("genkey", fmt.Errorf("%s exists; not overwriting a key (use -f)", p), 1)
			}
		}
	}
	key, pemData, err := signer.GenerateKey(*alg, *bits)
	if err != nil {
		return fail("genkey", err, 1)
	}
	record, err := signer.TXTRecord(*selector, *domain, key, signer.RecordOptions{AppendDomain: *appendDomain, Restrict: *restrict, Testing: *testing})
	if err != nil {
		return fail("genkey", err, 1)
	}
	if err := os.MkdirAll(*dir, 0o750); err != nil {
		return fail("genkey", err, 1)
	}
	if err := writeFile(keyPath, pemData); err != nil {
		return fail("genkey", err, 1)
	}
	if err := writeFile(txtPath, []byte(record)); err != nil {
		return fail("genkey", err, 1)
	}
	fmt.Printf("wrote %s and %s\npublish this record in the %s zone:\n%s", keyPath, txtPath, *domain, record)
	if nextCfg != nil {
		printNextKeyLines(os.Stdout, nextCfg, *selector, keyPath)
	}
	return 0
}

// validSelector reports whether s is a DKIM selector (RFC 6376 §3.1: one
// or more DNS labels separated by dots). It also becomes a file name, so
// nothing else may pass.
func validSelector(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// writeFile writes a file with mode 0600 whatever the umask, through a
// new temporary file in the same directory: os.CreateTemp picks a random
// name and opens it O_CREATE|O_EXCL, which never follows a symlink
// someone planted, and the rename replaces a link at path instead of
// writing through it.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	err = errors.Join(werr, f.Chmod(0o600), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
