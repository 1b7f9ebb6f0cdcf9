// Package testutil holds the helpers vouch's tests share, so that each is
// written once: a log buffer that a server writes to while the test reads
// it, and the like. Only tests import it.
package testutil

import (
	"strings"
	"sync"
)

// LogBuffer is an io.Writer that is safe for concurrent use: a server's
// logger writes to it while the test reads what was logged so far.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
