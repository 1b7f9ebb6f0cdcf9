package whitelist

import (
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Kind names one of the three files.
type Kind string

const (
	Reverse Kind = "reverse" // ReverseXcpt.dat: exempt from the PTR check
	HELO    Kind = "helo"    // HeloLookupWL.dat: exempt from the HELO check
	Mail    Kind = "mail"    // MailLookupWL.dat: exempt from the MAIL check
)

// Kinds lists the files in a fixed order.
var Kinds = []Kind{Reverse, HELO, Mail}

// Set holds the current list of each kind and swaps in a new one when its
// file changes. A file that fails to read keeps the list it had.
type Set struct {
	paths map[Kind]string
	lists map[Kind]*atomic.Pointer[List]
	log   *slog.Logger

	mu    sync.Mutex // serializes reloads
	stamp map[Kind]fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool // the file existed
}

// NewSet loads the three files. paths may leave a kind out (an empty list).
// The problems found are logged; the returned error is the first file that
// exists but cannot be read, since starting without an exception list the
// admin wrote would refuse mail they meant to let through.
func NewSet(paths map[Kind]string, log *slog.Logger) (*Set, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Set{paths: paths, lists: map[Kind]*atomic.Pointer[List]{}, log: log, stamp: map[Kind]fileStamp{}}
	for _, k := range Kinds {
		s.lists[k] = new(atomic.Pointer[List])
		s.lists[k].Store(&List{file: paths[k]})
	}
	for _, k := range Kinds {
		if err := s.reload(k, true); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// List returns the current list of a kind (never nil for the kinds in
// Kinds; nil, an empty list, for a nil Set or an unknown kind).
func (s *Set) List(k Kind) *List {
	if s == nil || s.lists[k] == nil {
		return nil
	}
	return s.lists[k].Load()
}

// Path is the file a kind is read from.
func (s *Set) Path(k Kind) string { return s.paths[k] }

// Reload re-reads every file whose modification time or size changed
// (force: every file). It returns the errors of files that kept their old
// list.
func (s *Set) Reload(force bool) []error {
	var errs []error
	for _, k := range Kinds {
		if err := s.reload(k, force); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (s *Set) reload(k Kind, force bool) error {
	path := s.paths[k]
	if path == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var st fileStamp
	if fi, err := os.Stat(path); err == nil {
		st = fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
	}
	if !force && st == s.stamp[k] {
		return nil
	}
	l, problems, err := Load(path)
	for _, p := range problems {
		if p.Line == 0 {
			s.log.Warn("whitelist: "+p.Reason, "file", p.File)
		} else {
			s.log.Warn("whitelist: "+p.Reason, "file", p.File, "line", p.Line)
		}
	}
	if err != nil {
		s.log.Error("whitelist: keeping the previous list", "file", path, "err", err)
		return err
	}
	s.lists[k].Store(l)
	s.stamp[k] = st
	s.log.Info("whitelist loaded", "kind", string(k), "file", path, "entries", l.Len())
	return nil
}

// Watch polls the files every interval until stop is closed.
func (s *Set) Watch(interval time.Duration, stop <-chan struct{}) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.Reload(false)
		}
	}
}
