package dmarcreport

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Recorder takes evaluations from the milter and writes them to the
// store in batches from one goroutine: a milter callback never waits for
// the store (bbolt's fsync, a Redis round trip), and a store that is slow
// or down costs rows, never mail.
type Recorder struct {
	store Store
	log   *slog.Logger
	every time.Duration
	queue *queue[Evaluation] // bounded: Record drops when it is full

	recorded, dropped atomic.Int64
	lastDropLog       atomic.Int64  // unix seconds of the last "dropped" line
	closed            chan struct{} // closed when run has written the last rows
}

// RecorderOptions size the buffer and the flush interval.
type RecorderOptions struct {
	Buffer int           // evaluations held before Record drops; 0: 10000
	Every  time.Duration // flush interval; 0: 5s
}

// NewRecorder starts the goroutine that writes to store; Close ends it.
func NewRecorder(store Store, log *slog.Logger, o RecorderOptions) *Recorder {
	if o.Buffer <= 0 {
		o.Buffer = 10000
	}
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	r := &Recorder{store: store, log: log, every: o.Every, queue: newQueue[Evaluation](o.Buffer),
		closed: make(chan struct{})}
	go r.run()
	return r
}

// Record queues ev for the store and never blocks: with the buffer full
// (or after Close) ev is dropped, counted, and logged at most once a
// minute.
func (r *Recorder) Record(ev Evaluation) {
	if r.queue.put(ev) {
		return
	}
	n := r.dropped.Add(1)
	now := time.Now().Unix()
	if last := r.lastDropLog.Load(); now-last >= 60 && r.lastDropLog.CompareAndSwap(last, now) {
		r.log.Warn("dmarc reports: report rows dropped (the store does not keep up, or vouch is stopping)", "dropped_total", n)
	}
}

// Stats are the rows written to the store and the rows dropped so far.
func (r *Recorder) Stats() (recorded, dropped int64) { return r.recorded.Load(), r.dropped.Load() }

// Close writes what is queued and stops; the store stays open.
func (r *Recorder) Close() {
	r.queue.stop()
	<-r.closed
}

func (r *Recorder) run() {
	defer close(r.closed)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.flush()
		case <-r.queue.done:
			r.flush()
			return
		}
	}
}

// flush writes what the queue holds now (only run reads the queue, so
// the len(queue) evaluations are there).
func (r *Recorder) flush() {
	n := len(r.queue.ch)
	if n == 0 {
		return
	}
	batch := make([]Evaluation, n)
	for i := range batch {
		batch[i] = <-r.queue.ch
	}
	r.write(batch)
}

func (r *Recorder) write(batch []Evaluation) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.store.Add(ctx, batch); err != nil {
		n := r.dropped.Add(int64(len(batch)))
		r.log.Error("dmarc reports: cannot write report rows to the store; they are lost", "rows", len(batch), "dropped_total", n, "err", err.Error())
		return
	}
	r.recorded.Add(int64(len(batch)))
}
