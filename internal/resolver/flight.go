package resolver

import (
	"context"
	"sync"
)

// flightGroup collapses concurrent identical lookups into one query.
//
// The shared query runs on its own context, detached from any one caller,
// so that a caller giving up early does not fail the others; each caller
// still stops waiting at its own deadline. The query itself is bounded by
// the resolver's per-query timeout and attempts.
type flightGroup struct {
	mu    sync.Mutex
	calls map[cacheKey]*flight
}

type flight struct {
	done   chan struct{}
	answer *Answer
	err    error
}

func (g *flightGroup) do(ctx context.Context, k cacheKey, fn func(context.Context) (*Answer, error)) (*Answer, error, bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[cacheKey]*flight)
	}
	f, shared := g.calls[k]
	if !shared {
		f = &flight{done: make(chan struct{})}
		g.calls[k] = f
		go func() {
			f.answer, f.err = fn(context.WithoutCancel(ctx))
			g.mu.Lock()
			delete(g.calls, k)
			g.mu.Unlock()
			close(f.done)
		}()
	}
	g.mu.Unlock()

	select {
	case <-f.done:
		return f.answer, f.err, shared
	case <-ctx.Done():
		return nil, &TempError{Name: k.name, Type: typeName(k.qtype), Reason: "deadline exceeded", Timeout: true}, shared
	}
}
