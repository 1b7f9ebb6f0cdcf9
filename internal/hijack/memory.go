package hijack

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Counts is one login's use of the sliding window.
type Counts struct {
	Messages   int       `json:"messages"`
	Recipients int       `json:"recipients"`
	Oldest     time.Time `json:"oldest,omitzero"` // the oldest message still counted
}

// Freeze is a frozen account.
type Freeze struct {
	ID         string    `json:"id,omitempty"` // random per freeze (hex), bound into the release token
	Login      string    `json:"login"`
	Since      time.Time `json:"since"`
	Reason     string    `json:"reason"`
	Messages   int       `json:"messages"`   // in the window when it was frozen
	Recipients int       `json:"recipients"` // likewise
	IPs        []string  `json:"ips,omitempty"`
	Host       string    `json:"host,omitempty"` // the vouch instance that froze it
}

// Account is one login's counters, for `vouch accounts list`.
type Account struct {
	Login string `json:"login"`
	Counts
	IPs []string `json:"ips,omitempty"`
}

// event is one accepted message.
type event struct {
	at    time.Time
	rcpts int
	ip    netip.Addr
}

// sampleSize is how many recent recipients are kept per login for the
// notification.
const sampleSize = 10

// account is a login's accepted messages inside the window, oldest first.
type account struct {
	events []event
	rcpts  int
	sample []string // most recent last
}

// prune drops the messages that left the window: a message accepted at t
// counts until t+window, exclusive (the Redis script removes scores <=
// now-window alike).
func (a *account) prune(cut time.Time) {
	i := 0
	for i < len(a.events) && !a.events[i].at.After(cut) {
		a.rcpts -= a.events[i].rcpts
		i++
	}
	if i > 0 {
		a.events = slices.Delete(a.events, 0, i)
	}
}

func (a *account) counts() Counts {
	c := Counts{Messages: len(a.events), Recipients: a.rcpts}
	if len(a.events) > 0 {
		c.Oldest = a.events[0].at
	}
	return c
}

func (a *account) ips() []string {
	var ips []string
	for _, e := range a.events {
		if s := e.ip.String(); e.ip.IsValid() && !slices.Contains(ips, s) {
			ips = append(ips, s)
		}
	}
	return ips
}

// memStore keeps the counters in this process. With the memory backend it
// is the store, and its freeze list is persisted in the state file; with
// the Redis backend it mirrors what this instance counted and the freezes
// it saw, and decides alone while Redis is unreachable (fail-open).
type memStore struct {
	window time.Duration
	path   string // state file; "" keeps freezes in memory only

	mu       sync.Mutex
	accounts map[string]*account
	frozen   map[string]Freeze
	pending  map[string]bool           // Redis backend: freezes made while Redis was down, not written there yet
	backlog  map[string][]backlogEntry // Redis backend: messages counted while Redis was down, not added there yet

	writeMu sync.Mutex // orders state file writes
}

func newMemStore(window time.Duration, path string) (*memStore, error) {
	m := &memStore{window: window, path: path, accounts: map[string]*account{}, frozen: map[string]Freeze{}, pending: map[string]bool{},
		backlog: map[string][]backlogEntry{}}
	if path == "" {
		return m, nil
	}
	frozen, err := loadState(path)
	if err != nil {
		return nil, err
	}
	for _, f := range frozen {
		m.frozen[f.Login] = f
	}
	return m, nil
}

func (m *memStore) check(login string, now time.Time) (Counts, *Freeze) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var c Counts
	if a := m.accounts[login]; a != nil {
		a.prune(now.Add(-m.window))
		c = a.counts()
	}
	if f, ok := m.frozen[login]; ok {
		return c, &f
	}
	return c, nil
}

func (m *memStore) add(login string, ev event, sample []string, now time.Time) Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.accounts[login]
	if a == nil {
		a = &account{}
		m.accounts[login] = a
	}
	a.prune(now.Add(-m.window))
	a.events = append(a.events, ev)
	a.rcpts += ev.rcpts
	for _, r := range sample {
		// Distinct recipients, most recent last.
		if i := slices.Index(a.sample, r); i >= 0 {
			a.sample = slices.Delete(a.sample, i, i+1)
		}
		a.sample = append(a.sample, r)
	}
	if n := len(a.sample); n > sampleSize {
		a.sample = slices.Delete(a.sample, 0, n-sampleSize)
	}
	return a.counts()
}

func (m *memStore) details(login string, now time.Time) (ips, sample []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.accounts[login]
	if a == nil {
		return nil, nil
	}
	a.prune(now.Add(-m.window))
	return a.ips(), slices.Clone(a.sample)
}

// freeze records f unless the login is frozen already. It returns the
// freeze in force and whether this call made it (then the caller sends
// the one notification). An error means the freeze is in force but could
// not be written to the state file.
func (m *memStore) freeze(f Freeze, pending bool) (Freeze, bool, error) {
	m.mu.Lock()
	if cur, ok := m.frozen[f.Login]; ok {
		m.mu.Unlock()
		return cur, false, nil
	}
	m.frozen[f.Login] = f
	if pending {
		m.pending[f.Login] = true
	}
	m.mu.Unlock()
	return f, true, m.save()
}

// cacheFreeze mirrors what Redis said about login: frozen (f) or not.
// A freeze made here during an outage and not pushed yet is kept.
func (m *memStore) cacheFreeze(login string, f *Freeze) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case f != nil:
		m.frozen[login] = *f
		delete(m.pending, login)
	case !m.pending[login]:
		delete(m.frozen, login)
	}
}

// takePending returns the freezes still to be written to Redis.
func (m *memStore) takePending() []Freeze {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Freeze
	for login := range m.pending {
		if f, ok := m.frozen[login]; ok {
			out = append(out, f)
		}
	}
	return out
}

func (m *memStore) donePending(login string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pending, login)
}

// backlogEntry is a message counted while Redis was unreachable, with the
// window member it gets in Redis (fixed when it is counted, so that a
// retried write back cannot count it twice).
type backlogEntry struct {
	at     time.Time
	member string
}

// addBacklog keeps a message counted locally during a Redis outage, to be
// added to the shared window once Redis answers: otherwise every outage
// would hand a hijacker a fresh limit.
func (m *memStore) addBacklog(login string, e backlogEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.backlog[login] = append(m.backlog[login], e)
}

// takeBacklog returns the messages still to be added to Redis that are
// inside the window at now; older ones are dropped (they no longer count).
func (m *memStore) takeBacklog(now time.Time) map[string][]backlogEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	cut := now.Add(-m.window)
	out := map[string][]backlogEntry{}
	for login, entries := range m.backlog {
		entries = slices.DeleteFunc(entries, func(e backlogEntry) bool { return !e.at.After(cut) })
		if len(entries) == 0 {
			delete(m.backlog, login)
			continue
		}
		m.backlog[login] = entries
		out[login] = slices.Clone(entries)
	}
	return out
}

// doneBacklog forgets the backlog entries of login that were written to
// Redis; entries added meanwhile stay.
func (m *memStore) doneBacklog(login string, written []backlogEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rest := slices.DeleteFunc(m.backlog[login], func(e backlogEntry) bool {
		return slices.ContainsFunc(written, func(w backlogEntry) bool { return w.member == e.member })
	})
	if len(rest) == 0 {
		delete(m.backlog, login)
		return
	}
	m.backlog[login] = rest
}

// release removes login's freeze and counters and reports whether it was
// frozen.
func (m *memStore) release(login string) (bool, error) {
	m.mu.Lock()
	_, was := m.frozen[login]
	delete(m.frozen, login)
	delete(m.pending, login)
	delete(m.backlog, login)
	delete(m.accounts, login)
	m.mu.Unlock()
	if !was {
		return false, nil
	}
	return true, m.save()
}

func (m *memStore) list(now time.Time) ([]Account, []Freeze) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var accounts []Account
	for login, a := range m.accounts {
		a.prune(now.Add(-m.window))
		if len(a.events) == 0 {
			continue
		}
		accounts = append(accounts, Account{Login: login, Counts: a.counts(), IPs: a.ips()})
	}
	frozen := make([]Freeze, 0, len(m.frozen))
	for _, f := range m.frozen {
		frozen = append(frozen, f)
	}
	sortListing(accounts, frozen)
	return accounts, frozen
}

func sortListing(accounts []Account, frozen []Freeze) {
	sort.Slice(accounts, func(i, j int) bool { return accounts[i].Login < accounts[j].Login })
	sort.Slice(frozen, func(i, j int) bool { return frozen[i].Login < frozen[j].Login })
}

// sweep forgets logins that have nothing left in the window, so memory
// follows the logins active in the last window, not every login ever seen.
func (m *memStore) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for login, a := range m.accounts {
		a.prune(now.Add(-m.window))
		if len(a.events) == 0 {
			delete(m.accounts, login)
		}
	}
}

// stateFile is the JSON in state_file.
type stateFile struct {
	Version int      `json:"version"`
	Frozen  []Freeze `json:"frozen"`
}

// save writes the freeze list to the state file atomically: a temporary
// file in the same directory, fsync, rename over the old file, fsync of
// the directory. A crash leaves either the old or the new list, never a
// torn file: a torn file would fail the next start, and an empty one would
// silently release every frozen account.
func (m *memStore) save() error {
	if m.path == "" {
		return nil
	}
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	m.mu.Lock()
	st := stateFile{Version: 1, Frozen: make([]Freeze, 0, len(m.frozen))}
	for _, f := range m.frozen {
		st.Frozen = append(st.Frozen, f)
	}
	m.mu.Unlock()
	sortListing(nil, st.Frozen)
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(m.path, append(data, '\n'))
}

func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o640); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	// The rename is durable only once the directory is synced.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// loadState reads the freeze list; a missing file is an empty list.
func loadState(path string) ([]Freeze, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		// Refuse to start rather than drop the freezes: an empty list would
		// let every frozen (hijacked) account send again.
		return nil, fmt.Errorf("state file %s: %v (fix or remove it; it lists the frozen accounts)", path, err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("state file %s: unknown version %d", path, st.Version)
	}
	for i, f := range st.Frozen {
		st.Frozen[i].Login = normalizeLogin(f.Login)
		if strings.TrimSpace(f.Login) == "" {
			return nil, fmt.Errorf("state file %s: entry %d has no login", path, i+1)
		}
	}
	return st.Frozen, nil
}
