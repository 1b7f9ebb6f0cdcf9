package dmarcreport

import "sync"

// queue is the bounded hand-over from milter callbacks to one background
// goroutine (the Recorder's writer, the Capture's reader): put never
// blocks, and after stop it takes nothing more, so that what the
// goroutine drains at the end is all there is.
type queue[T any] struct {
	ch      chan T
	mu      sync.RWMutex // put holds it for reading, stop for writing
	stopped bool
	done    chan struct{} // closed by stop
}

func newQueue[T any](size int) *queue[T] {
	return &queue[T]{ch: make(chan T, size), done: make(chan struct{})}
}

// put queues v; false when the queue is full or stopped.
func (q *queue[T]) put(v T) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.stopped {
		return false
	}
	select {
	case q.ch <- v:
		return true
	default:
		return false
	}
}

// stop makes put refuse from now on and closes done.
func (q *queue[T]) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.stopped {
		q.stopped = true
		close(q.done)
	}
}
