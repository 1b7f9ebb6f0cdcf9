package signer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// line is one entry of an OpenDKIM data set: a key, the rest of the line
// as value, and where it came from.
type line struct {
	key, value string
	source     string // file:line, for errors and logs
}

// dataset is an OpenDKIM data set reference (opendkim.conf(5) DATA SETS):
// "file:/path", "refile:/path", "csl:a,b,c" or a bare "/path".
type dataset struct {
	kind string // "file", "refile" or "csl"
	path string // the file, or the list itself for csl
}

func parseDataset(spec string, allowRefile bool) (dataset, error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok || strings.HasPrefix(spec, "/") {
		if strings.HasPrefix(spec, "/") {
			return dataset{"file", spec}, nil
		}
		// OpenDKIM reads anything else as a comma-separated list.
		return dataset{"csl", spec}, nil
	}
	switch strings.ToLower(kind) {
	case "file":
		return dataset{"file", rest}, nil
	case "refile":
		if !allowRefile {
			return dataset{}, fmt.Errorf("%q: refile: is only meaningful for the signing table", spec)
		}
		return dataset{"refile", rest}, nil
	case "csl":
		return dataset{"csl", rest}, nil
	}
	return dataset{}, fmt.Errorf("%q: data set type %q is not supported (file:, refile:, csl: or a path)", spec, kind)
}

// lines reads the data set's entries.
func (d dataset) lines() ([]line, error) {
	if d.kind == "csl" {
		var out []line
		for i, item := range strings.Split(d.path, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			k, v, _ := strings.Cut(item, "=")
			out = append(out, line{key: k, value: v, source: fmt.Sprintf("csl item %d", i+1)})
		}
		return out, nil
	}
	f, err := os.Open(d.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLines(d.path, f)
}

// readLines follows opendkim-db.c for flat files: "#" anywhere starts a
// comment, surrounding whitespace is trimmed, the key is the first token
// and the value everything after the first run of whitespace.
func readLines(name string, r io.Reader) ([]line, error) {
	var out []line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		key, value := text, ""
		if i := strings.IndexAny(text, " \t"); i >= 0 {
			key, value = text[:i], strings.TrimSpace(text[i:])
		}
		out = append(out, line{key: key, value: value, source: fmt.Sprintf("%s:%d", name, n)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
