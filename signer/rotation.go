package signer

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RotationConfig is the [rotation] section.
type RotationConfig struct {
	CheckInterval time.Duration // how often the next selector is looked up
	PublishDelay  time.Duration // how long it must have matched before the switch
	AutoSwitch    bool
	StateFile     string
}

// TXTLookup returns the TXT records of a name, each one's strings joined,
// from DNS and not from a cache. A name without TXT records is (nil, nil);
// an error is a temporary failure and says nothing about the record.
type TXTLookup func(ctx context.Context, name string) ([]string, error)

// RotationEvents receives the switches and the problems after a switch
// (metrics).
type RotationEvents interface {
	KeyRotation(domain, event string) // event: "switched" or "error"
}

// Rotation moves [[signing.key]] entries that name a next key to that key
// once its record has been published and matching, without interruption,
// for PublishDelay. It is the one place that decides which of the two
// keys signs. The wait and the switch are kept in the state file, so a
// restart or reload neither restarts the wait nor goes back to the old
// key.
type Rotation struct {
	cfg  RotationConfig
	keys []*rotatingKey

	// Set before Run or Check.
	Lookup TXTLookup
	Log    *slog.Logger
	Events RotationEvents   // may be nil
	Now    func() time.Time // the clock (tests inject one)
}

// stateMu makes the checks of all Rotations in the process take turns: on
// a reload the old runtime's check may still run while the new one's
// starts, and each writes the whole state file.
var stateMu sync.Mutex

// rotatingKey is one [[signing.key]] with its successor.
type rotatingKey struct {
	cur, next *Key
	id        string // state file key: domain/selector
	nextID    string // the next key: selector and public key fingerprint
	switched  atomic.Bool
}

// RotationStatus is where one key's rotation stands.
type RotationStatus struct {
	Current, Next  *Key
	PublishedSince time.Time // zero: not seen published and matching
	SwitchAt       time.Time // PublishedSince + PublishDelay
	SwitchedAt     time.Time // zero: not switched
}

// newRotation loads the state file for the keys that have a successor.
func newRotation(cfg RotationConfig, pairs [][2]*Key) (*Rotation, error) {
	r := &Rotation{cfg: cfg, Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	for _, p := range pairs {
		pub, _ := PublicKeyRecord(p[1].Signer)
		sum := sha256.Sum256([]byte(pub))
		r.keys = append(r.keys, &rotatingKey{
			cur: p[0], next: p[1], id: p[0].Domain + "/" + p[0].Selector,
			nextID: p[1].Selector + " " + base64.RawStdEncoding.EncodeToString(sum[:12]),
		})
	}
	st, err := loadRotationState(cfg.StateFile)
	if err != nil {
		return nil, err
	}
	for _, k := range r.keys {
		if e := st.entry(k); !e.SwitchedAt.IsZero() {
			k.switched.Store(true)
		}
	}
	return r, nil
}

// active is the key that signs instead of k: its successor once switched.
func (r *Rotation) active(k *Key) *Key {
	if r == nil {
		return k
	}
	for _, rk := range r.keys {
		if rk.cur == k && rk.switched.Load() {
			return rk.next
		}
	}
	return k
}

// Status reports every rotating key, as the state file has it.
func (r *Rotation) Status() ([]RotationStatus, error) {
	st, err := loadRotationState(r.cfg.StateFile)
	if err != nil {
		return nil, err
	}
	out := make([]RotationStatus, len(r.keys))
	for i, k := range r.keys {
		e := st.entry(k)
		out[i] = RotationStatus{Current: k.cur, Next: k.next, PublishedSince: e.PublishedSince, SwitchedAt: e.SwitchedAt}
		if !e.PublishedSince.IsZero() {
			out[i].SwitchAt = e.PublishedSince.Add(r.cfg.PublishDelay)
		}
	}
	return out, nil
}

// Run checks at once, then every CheckInterval until ctx ends.
func (r *Rotation) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.CheckInterval)
	defer t.Stop()
	for {
		r.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check looks every next selector up once and moves the keys whose record
// has matched for PublishDelay to their successor.
func (r *Rotation) Check(ctx context.Context) {
	stateMu.Lock()
	defer stateMu.Unlock()
	// The file, not memory, is the truth: a runtime replaced by a reload
	// may have switched a key since this one was built.
	st, err := loadRotationState(r.cfg.StateFile)
	if err != nil {
		r.Log.Error("key rotation: state file unreadable; not checking", "err", err)
		return
	}
	changed := false
	for _, k := range r.keys {
		if r.check(ctx, k, st) {
			changed = true
		}
	}
	if !changed {
		return
	}
	if err := st.save(r.cfg.StateFile); err != nil {
		// A switch only happens after its state is saved (see check),
		// so this loses at most the start of a wait.
		r.Log.Error("key rotation: cannot save the state", "file", r.cfg.StateFile, "err", err)
	}
}

// check is one key's round; it reports whether its state changed.
func (r *Rotation) check(ctx context.Context, k *rotatingKey, st *rotationState) bool {
	e := st.entry(k)
	restored := false
	switch {
	case !e.SwitchedAt.IsZero():
		k.switched.Store(true)
	case k.switched.Load():
		// Switched, but the file lost it (edited, or restored from a
		// backup): write it again, a restart must not go back.
		e.SwitchedAt = r.Now()
		st.set(k, e)
		restored = true
	}
	name := k.next.Selector + "._domainkey." + k.next.Domain
	log := r.Log.With("domain", k.cur.Domain, "selector", k.cur.Selector, "next_selector", k.next.Selector)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	txts, err := r.Lookup(lctx, name)
	cancel()
	var mismatch error
	if err == nil {
		_, mismatch = CheckKeyRecord(txts, k.next.Signer)
	}
	now := r.Now()
	switch {
	case k.switched.Load():
		// The old selector's record may be gone already: going back could
		// break more than it fixes, so keep signing and shout.
		problem := mismatch
		if err != nil {
			problem = err
		}
		if problem != nil {
			log.Error("key rotation: signing with the next key, but its record "+name+" does not verify it: publish it again (vouch keys shows the record)", "reason", problem.Error())
			if r.Events != nil {
				r.Events.KeyRotation(k.cur.Domain, "error")
			}
		}
		return restored
	case err != nil:
		// A DNS failure is no evidence either way: keep the clock, do
		// not switch on this round.
		log.Warn("key rotation: lookup of the next selector failed; trying again at the next check", "err", err)
		return false
	case mismatch != nil:
		if e.PublishedSince.IsZero() {
			return false
		}
		log.Warn("key rotation: the next key's record no longer matches; the wait starts again once it does", "reason", mismatch.Error())
		st.set(k, rotationEntry{})
		return true
	}
	changed := false
	if record := strings.Join(txts, ""); e.PublishedSince.IsZero() || e.Record != record {
		e = rotationEntry{PublishedSince: now, Record: record}
		log.Info("key rotation: the next key is published; switching when it has matched for the publish delay", "switch_at", now.Add(r.cfg.PublishDelay).UTC().Format(time.RFC3339))
		st.set(k, e)
		changed = true
	}
	if now.Sub(e.PublishedSince) < r.cfg.PublishDelay {
		return changed
	}
	if !r.cfg.AutoSwitch {
		if !e.Ready {
			e.Ready = true
			st.set(k, e)
			log.Info("key rotation: the next key is ready; auto_switch is off, so make next_selector the selector in the configuration and reload")
			changed = true
		}
		return changed
	}
	e.SwitchedAt = now
	st.set(k, e)
	// Saved first: a switch that a restart would forget could make vouch
	// sign with the old key after its record is removed.
	if err := st.save(r.cfg.StateFile); err != nil {
		log.Error("key rotation: cannot save the state file; not switching", "file", r.cfg.StateFile, "err", err)
		e.SwitchedAt = time.Time{}
		st.set(k, e)
		return false
	}
	k.switched.Store(true)
	log.Info("key rotation: switched to the next key", "published_since", e.PublishedSince.UTC().Format(time.RFC3339))
	if r.Events != nil {
		r.Events.KeyRotation(k.cur.Domain, "switched")
	}
	return false
}
