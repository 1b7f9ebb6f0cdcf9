package dmarcreport

import "fmt"

// STUB (issue 18 skeleton): the store helper replaces this file.

// StoreOptions say which store to open.
type StoreOptions struct {
	Kind string // "memory", "bolt", "redis"
	Path string // bolt
}

// OpenStore opens the configured store.
func OpenStore(o StoreOptions) (Store, error) {
	if o.Kind == "memory" {
		return NewMemoryStore(), nil
	}
	return nil, fmt.Errorf("store %q: not built yet", o.Kind)
}
