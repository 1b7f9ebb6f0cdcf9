// Package opendkimconf reads an OpenDKIM configuration file
// (opendkim.conf(5)) the way OpenDKIM 2.11 reads it, and converts it into
// the equivalent vouch configuration, listing what cannot be carried over.
//
// The reading rules follow opendkim/config.c (config_load_level): a line
// is cut at the first "#" or CR; the first word (space or tab separated)
// is the option, matched case-insensitively; the value is the rest of the
// line without leading and trailing blanks; an option without a value, an
// unknown option or a bad boolean or integer is an error that keeps
// OpenDKIM from starting. "Include FILE" reads FILE in place, five levels
// deep at most. When an option is given more than once, the last one
// counts (config_get walks a list built newest first).
package opendkimconf

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxInclude is OpenDKIM's MAXLEVEL: Include nesting deeper than this fails.
const maxInclude = 5

// Setting is one "Option Value" line.
type Setting struct {
	Name  string // OpenDKIM's spelling for known options, else as written
	Value string
	File  string
	Line  int
	Known bool // the option is in OpenDKIM 2.11's table (opendkim-config.h)
}

// Where is file:line.
func (s Setting) Where() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// Problem is a line OpenDKIM itself would refuse, or an Include that could
// not be read.
type Problem struct {
	Setting
	Reason string
}

// File is a parsed configuration: every setting in the order OpenDKIM
// reads them (Include files in place), and the lines it would refuse.
type File struct {
	Path     string
	Settings []Setting
	Problems []Problem
}

// Read parses the configuration file at path and the files it includes.
// Only a main file that cannot be read is an error; problems inside it are
// collected in Problems.
func Read(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	f := &File{Path: path}
	if err := f.parse(path, fh, 0); err != nil {
		return nil, err
	}
	return f, nil
}

// Parse reads a configuration from r; name is used in locations. Include
// lines are followed on the file system.
func Parse(name string, r io.Reader) (*File, error) {
	f := &File{Path: name}
	if err := f.parse(name, r, 0); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) parse(name string, r io.Reader, level int) error {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		raw, err := br.ReadString('\n')
		if raw == "" && err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		line := strings.TrimSuffix(raw, "\n")
		if i := strings.IndexAny(line, "#\r"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			continue
		}
		opt, value := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			opt, value = line[:i], strings.Trim(line[i+1:], " \t")
		}
		s := Setting{Name: opt, Value: value, File: name, Line: n}
		if canon, ok := canonical[strings.ToLower(opt)]; ok {
			s.Name, s.Known = canon, true
		}
		switch {
		case !s.Known:
			f.Problems = append(f.Problems, Problem{s, "unknown option: OpenDKIM refuses to start with it"})
			continue
		case value == "":
			f.Problems = append(f.Problems, Problem{s, "no value: OpenDKIM refuses to start with it"})
			continue
		}
		switch kinds[strings.ToLower(s.Name)] {
		case kindBool:
			if _, ok := parseBool(value); !ok {
				f.Problems = append(f.Problems, Problem{s, fmt.Sprintf("%q is not a boolean: OpenDKIM refuses to start with it", value)})
				continue
			}
		case kindInt:
			if _, ok := parseInt(value); !ok {
				f.Problems = append(f.Problems, Problem{s, fmt.Sprintf("%q is not an integer: OpenDKIM refuses to start with it", value)})
				continue
			}
		}
		if s.Name == "Include" {
			f.include(s, level)
			continue
		}
		f.Settings = append(f.Settings, s)
	}
}

func (f *File) include(s Setting, level int) {
	if level+1 > maxInclude {
		f.Problems = append(f.Problems, Problem{s, fmt.Sprintf("Include nested deeper than %d levels: OpenDKIM refuses to start", maxInclude)})
		return
	}
	fh, err := os.Open(s.Value)
	if err != nil {
		f.Problems = append(f.Problems, Problem{s, fmt.Sprintf("cannot read the included file (%v): OpenDKIM refuses to start", err)})
		return
	}
	defer fh.Close()
	if err := f.parse(s.Value, fh, level+1); err != nil {
		f.Problems = append(f.Problems, Problem{s, err.Error()})
	}
}

// Get returns the setting that counts for an option (the last one), and
// whether it is set at all.
func (f *File) Get(name string) (Setting, bool) {
	for i := len(f.Settings) - 1; i >= 0; i-- {
		if strings.EqualFold(f.Settings[i].Name, name) {
			return f.Settings[i], true
		}
	}
	return Setting{}, false
}

// parseBool is config.c's CONFIG_TYPE_BOOLEAN: only the first character
// counts (t, y, 1 true; f, n, 0 false; any case).
func parseBool(v string) (bool, bool) {
	switch v[0] {
	case 't', 'T', 'y', 'Y', '1':
		return true, true
	case 'f', 'F', 'n', 'N', '0':
		return false, true
	}
	return false, false
}

// parseInt is strtol(value, &end, 0) that must consume the whole value:
// decimal, 0x hex or 0 octal, with an optional sign.
func parseInt(v string) (int64, bool) {
	if strings.ContainsAny(v, "_ \t") {
		return 0, false // Go's base 0 allows underscores; strtol does not
	}
	s := v
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	base := 10
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	n, err := strconv.ParseInt(s, base, 32)
	if err != nil {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}
