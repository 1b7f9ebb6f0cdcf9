package signer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// rotationState is the state file: per current key (domain/selector),
// where the rotation to its next key stands.
type rotationState struct {
	Keys map[string]rotationEntry `json:"keys"`
}

type rotationEntry struct {
	Next           string    `json:"next"` // next selector and public key fingerprint
	Record         string    `json:"record,omitempty"`
	PublishedSince time.Time `json:"published_since,omitzero"`
	Ready          bool      `json:"ready,omitempty"` // delay passed with auto_switch off (logged once)
	SwitchedAt     time.Time `json:"switched_at,omitzero"`
}

func loadRotationState(path string) (*rotationState, error) {
	st := &rotationState{Keys: map[string]rotationEntry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rotation.state_file: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("rotation.state_file %s: %w (fix or remove it: it records which keys have switched)", path, err)
	}
	if st.Keys == nil {
		st.Keys = map[string]rotationEntry{}
	}
	return st, nil
}

// entry is the state of k; an entry for another next key (the config
// changed) counts as none.
func (st *rotationState) entry(k *rotatingKey) rotationEntry {
	e := st.Keys[k.id]
	if e.Next != k.nextID {
		return rotationEntry{}
	}
	return e
}

func (st *rotationState) set(k *rotatingKey, e rotationEntry) {
	e.Next = k.nextID
	st.Keys[k.id] = e
}

// save writes the file atomically (temp file, fsync, rename).
func (st *rotationState) save(path string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".rotation-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(append(data, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
