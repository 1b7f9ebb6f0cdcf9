package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

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
		exits:   "0 converted\n1 the OpenDKIM configuration cannot be read or converted",
		example: "vouch import-opendkim /etc/opendkim.conf > /etc/vouch/vouch.toml",
		maxArgs: 1,
	}, stdout, stderr)
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
	res := opendkimconf.Convert(f)
	// The output must load as it is; anything else is a bug here.
	if err := checkLoads(res.TOML); err != nil {
		fmt.Fprintf(stderr, "vouch import-opendkim: the converted configuration does not load (a bug, please report it with the OpenDKIM file): %v\n", err)
		return 1
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
