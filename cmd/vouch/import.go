package main

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"vouch/internal/daemon"
	"vouch/internal/opendkimconf"
)

const defaultOpenDKIMConf = "/etc/opendkim.conf"

func runImportOpenDKIM(args []string) int {
	return importOpenDKIM(args, os.Stdout, os.Stderr)
}

// importOpenDKIM converts an OpenDKIM configuration: the vouch TOML goes
// to stdout, what is not carried over (and the notes) to stderr as well.
func importOpenDKIM(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("import-opendkim", help{
		usage: "vouch import-opendkim [" + defaultOpenDKIMConf + "]",
		about: "Prints the vouch configuration equivalent to an OpenDKIM configuration on\n" +
			"stdout. It uses the same key, table and host files. Every OpenDKIM option\n" +
			"it cannot carry over is listed, with the reason, at the top of the output\n" +
			"and on stderr.",
		exits:   "0 converted\n1 the OpenDKIM configuration cannot be read or converted, or the password file cannot be written",
		example: "vouch import-opendkim /etc/opendkim.conf > /etc/vouch/vouch.toml",
		maxArgs: 1,
	}, stdout, stderr)
	passwordFile := fs.String("ldap-password-file", opendkimconf.DefaultLDAPPasswordFile,
		"where OpenDKIM's LDAPBindPassword is written (mode 0600, owner vouch if that user exists); the printed configuration names this file and never holds the password")
	pos, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	path := defaultOpenDKIMConf
	if len(pos) == 1 {
		path = pos[0]
	}
	f, err := opendkimconf.Read(path)
	if err != nil {
		fmt.Fprintf(stderr, "vouch import-opendkim: %v\n", err)
		return 1
	}
	res := opendkimconf.Convert(f, opendkimconf.Options{LDAPPasswordFile: *passwordFile})
	// The output must load as it is; anything else is a bug here.
	if err := checkLoads(res.TOML); err != nil {
		fmt.Fprintf(stderr, "vouch import-opendkim: the converted configuration does not load (a bug, please report it with the OpenDKIM file): %v\n", err)
		return 1
	}
	if res.LDAPBindPassword != "" {
		if err := writeSecret(*passwordFile, res.LDAPBindPassword); err != nil {
			fmt.Fprintf(stderr, "vouch import-opendkim: LDAPBindPassword: %v (choose another file with -ldap-password-file)\n", err)
			return 1
		}
	}
	if _, err := stdout.Write(res.TOML); err != nil {
		fmt.Fprintf(stderr, "vouch import-opendkim: %v\n", err)
		return 1
	}
	for _, it := range res.NotCarried {
		fmt.Fprintf(stderr, "not carried over: %s\n", it)
	}
	for _, it := range res.Notes {
		fmt.Fprintf(stderr, "note: %s\n", it)
	}
	fmt.Fprintf(stderr, "vouch import-opendkim: %s converted; %d settings not carried over, %d notes\n", path, len(res.NotCarried), len(res.Notes))
	return 0
}

// checkLoads runs the converted configuration through daemon.Load, the
// checks serve -check makes before it reads any key.
func checkLoads(data []byte) error {
	dir, err := os.MkdirTemp("", "vouch-import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "vouch.toml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	_, err = daemon.Load(path)
	return err
}

// writeSecret writes a password file as the signer wants it: mode 0600,
// owned by the service user when it exists and this runs as root. It never
// follows a symlink or replaces a file that holds something else; the same
// password already there is fine (a second import).
func writeSecret(path, secret string) error {
	data := secret + "\n"
	if old, err := os.ReadFile(path); err == nil {
		if strings.TrimSpace(string(old)) == secret {
			return nil
		}
		return fmt.Errorf("%s exists and holds something else: not replaced", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("vouch"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			return os.Chown(path, uid, gid)
		}
	}
	return nil
}
