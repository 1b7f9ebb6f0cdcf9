package whitelist

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var fileNames = map[Kind]string{
	Reverse: "ReverseXcpt.dat",
	HELO:    "HeloLookupWL.dat",
	Mail:    "MailLookupWL.dat",
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// writeFile writes a list and moves its modification time forward by
// bump, so that a rewrite within the file system's time resolution is
// still seen as a change.
func writeFile(t testing.TB, path, text string, bump time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if bump != 0 {
		mt := time.Now().Add(bump)
		if err := os.Chtimes(path, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

// newTestSet writes the given files (a kind left out has a path but no
// file) and loads them.
func newTestSet(t testing.TB, files map[Kind]string) (*Set, map[Kind]string) {
	t.Helper()
	dir := t.TempDir()
	paths := map[Kind]string{}
	for _, k := range Kinds {
		paths[k] = filepath.Join(dir, fileNames[k])
		if text, ok := files[k]; ok {
			writeFile(t, paths[k], text, 0)
		}
	}
	s, err := NewSet(paths, discardLog())
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	return s, paths
}

func matchesIP(l *List, ip string) bool {
	_, ok := l.MatchIP(netip.MustParseAddr(ip))
	return ok
}

func TestSetLoad(t *testing.T) {
	s, paths := newTestSet(t, map[Kind]string{
		Reverse: "192.0.2.1\n192.0.2.2\n",
		HELO:    "legacy.partner.test\n",
		Mail:    "*@partner.test\n192.0.2.3\nbad!line\n",
	})
	for k, want := range map[Kind]int{Reverse: 2, HELO: 1, Mail: 2} {
		l := s.List(k)
		if l == nil || l.Len() != want || l.File() != paths[k] || s.Path(k) != paths[k] {
			t.Errorf("%s: %d entries from %q, want %d from %q", k, l.Len(), l.File(), want, paths[k])
		}
	}
	if !matchesIP(s.List(Reverse), "192.0.2.2") || matchesIP(s.List(HELO), "192.0.2.2") {
		t.Error("lists mixed up")
	}
	if _, ok := s.List(Mail).MatchAddress("x@partner.test"); !ok {
		t.Error("Mail list does not match")
	}
	if s.List("other") != nil {
		t.Error("unknown kind has a list")
	}
	var nilSet *Set
	if nilSet.List(Reverse).Len() != 0 {
		t.Error("nil Set has a list")
	}
}

func TestSetMissingFile(t *testing.T) {
	s, paths := newTestSet(t, map[Kind]string{Reverse: "192.0.2.1\n"})
	for _, k := range []Kind{HELO, Mail} {
		if l := s.List(k); l == nil || l.Len() != 0 {
			t.Errorf("%s: %v, want an empty list", k, l)
		}
	}
	if errs := s.Reload(false); errs != nil {
		t.Errorf("Reload: %v", errs)
	}
	// Created later: picked up.
	writeFile(t, paths[HELO], "helo.partner.test\n", 0)
	if errs := s.Reload(false); errs != nil {
		t.Errorf("Reload: %v", errs)
	}
	if s.List(HELO).Len() != 1 {
		t.Errorf("new file not loaded: %d entries", s.List(HELO).Len())
	}
	// Deleted: an empty list again.
	if err := os.Remove(paths[Reverse]); err != nil {
		t.Fatal(err)
	}
	if errs := s.Reload(false); errs != nil || s.List(Reverse).Len() != 0 {
		t.Errorf("after delete: %d entries, %v", s.List(Reverse).Len(), errs)
	}
}

func TestSetNoPathAndNilLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.dat")
	writeFile(t, p, "192.0.2.1\nbad!line\n", 0)
	s, err := NewSet(map[Kind]string{Reverse: p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.List(Reverse).Len() != 1 || s.List(Mail).Len() != 0 || s.List(Mail) == nil {
		t.Error("wrong lists")
	}
	if errs := s.Reload(true); errs != nil {
		t.Error(errs)
	}
}

func TestNewSetUnreadable(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewSet(map[Kind]string{Reverse: dir}, discardLog()); err == nil {
		t.Error("NewSet with a directory as the file succeeded")
	}
}

func TestSetReloadChanged(t *testing.T) {
	s, paths := newTestSet(t, map[Kind]string{Reverse: "192.0.2.1\n", HELO: "a.test\n"})
	before := s.List(Reverse)
	helo := s.List(HELO)

	// Nothing changed: the same lists stay.
	if errs := s.Reload(false); errs != nil {
		t.Fatal(errs)
	}
	if s.List(Reverse) != before || s.List(HELO) != helo {
		t.Error("unchanged files reloaded")
	}

	writeFile(t, paths[Reverse], "192.0.2.7\n192.0.2.8\n", 2*time.Second)
	if errs := s.Reload(false); errs != nil {
		t.Fatal(errs)
	}
	after := s.List(Reverse)
	if after == before || after.Len() != 2 || !matchesIP(after, "192.0.2.7") || matchesIP(after, "192.0.2.1") {
		t.Errorf("change not picked up: %d entries", after.Len())
	}
	if s.List(HELO) != helo {
		t.Error("the unchanged HELO file was reloaded")
	}
	// The old list still works for whoever holds it.
	if !matchesIP(before, "192.0.2.1") {
		t.Error("old list changed")
	}
	// force reloads everything.
	if errs := s.Reload(true); errs != nil || s.List(HELO) == helo {
		t.Errorf("forced reload: %v", errs)
	}
}

func TestSetReloadUnreadableKeepsList(t *testing.T) {
	s, paths := newTestSet(t, map[Kind]string{Reverse: "192.0.2.1\n", Mail: "a@b.test\n"})
	before := s.List(Reverse)
	// Tests may run as root, so chmod 000 would not stop the read: make
	// the path a directory instead.
	if err := os.Remove(paths[Reverse]); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(paths[Reverse], 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and it stays that way on the next poll
		errs := s.Reload(false)
		if len(errs) != 1 {
			t.Fatalf("Reload errors = %v, want one", errs)
		}
		if s.List(Reverse) != before || !matchesIP(s.List(Reverse), "192.0.2.1") {
			t.Fatal("previous list not kept")
		}
	}
	if s.List(Mail).Len() != 1 {
		t.Error("other list lost")
	}
	// Fixed: loaded again.
	if err := os.Remove(paths[Reverse]); err != nil {
		t.Fatal(err)
	}
	writeFile(t, paths[Reverse], "192.0.2.9\n", 2*time.Second)
	if errs := s.Reload(false); errs != nil || !matchesIP(s.List(Reverse), "192.0.2.9") {
		t.Errorf("not recovered: %v", errs)
	}
}

func TestSetWatch(t *testing.T) {
	s, paths := newTestSet(t, map[Kind]string{Reverse: "192.0.2.1\n"})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		s.Watch(10*time.Millisecond, stop)
		close(done)
	}()
	defer func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Watch did not stop")
		}
	}()

	writeFile(t, paths[Reverse], "192.0.2.1\n192.0.2.50\n", 2*time.Second)
	writeFile(t, paths[Mail], "x@y.test\n", 0)
	deadline := time.Now().Add(5 * time.Second)
	for !matchesIP(s.List(Reverse), "192.0.2.50") || s.List(Mail).Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the change")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatchDisabled(t *testing.T) {
	s, _ := newTestSet(t, nil)
	done := make(chan struct{})
	go func() {
		s.Watch(0, nil) // returns at once
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("Watch(0) did not return")
	}
}
