package dmarcreport

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"vouch/internal/testutil"
)

// slowStore is a MemoryStore whose Add waits for release, or fails.
type slowStore struct {
	*MemoryStore
	release chan struct{}
	fail    error
}

func (s *slowStore) Add(ctx context.Context, evs []Evaluation) error {
	if s.release != nil {
		<-s.release
	}
	if s.fail != nil {
		return s.fail
	}
	return s.MemoryStore.Add(ctx, evs)
}

func testEvaluation(ip string) Evaluation {
	return Evaluation{Time: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC), Policy: PolicyPublished{Domain: "example.com", P: "reject", Pct: 100},
		RUA: []string{"mailto:r@example.com"}, Record: Record{Row: Row{SourceIP: ip, Count: 1}}}
}

func rowCount(t *testing.T, st Store) int64 {
	aggs, err := st.Unreported(context.Background(), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, a := range aggs {
		for _, r := range a.Records {
			n += r.Row.Count
		}
	}
	return n
}

// TestRecorderNeverBlocks: with the store stuck, Record returns at once;
// beyond the buffer rows are dropped, counted and logged once; what was
// buffered reaches the store when it answers again, and at Close.
func TestRecorderNeverBlocks(t *testing.T) {
	st := &slowStore{MemoryStore: NewMemoryStore(), release: make(chan struct{})}
	var logs testutil.LogBuffer
	r := NewRecorder(st, slog.New(slog.NewTextHandler(&logs, nil)), RecorderOptions{Buffer: 4, Every: 10 * time.Millisecond})
	// The first flush takes 1 row and blocks in Add; 4 more fill the buffer.
	r.Record(testEvaluation("192.0.2.1"))
	deadline := time.Now().Add(5 * time.Second)
	for len(r.queue.ch) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for range 10 {
		r.Record(testEvaluation("192.0.2.2"))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Record took %s with the store stuck", d)
	}
	if _, dropped := r.Stats(); dropped != 6 {
		t.Errorf("dropped %d, want 6", dropped)
	}
	if n := strings.Count(logs.String(), "rows dropped"); n != 1 {
		t.Errorf("%d drop lines, want 1 (at most one a minute):\n%s", n, logs.String())
	}
	close(st.release)
	r.Close()
	if got := rowCount(t, st); got != 5 {
		t.Errorf("store holds %d rows, want 5", got)
	}
	if rec, _ := r.Stats(); rec != 5 {
		t.Errorf("recorded %d", rec)
	}
	r.Record(testEvaluation("192.0.2.3")) // after Close: dropped, no panic
	if _, dropped := r.Stats(); dropped != 7 {
		t.Errorf("dropped %d after Close, want 7", dropped)
	}
}

// TestRecorderStoreError: rows the store refuses are counted as dropped
// and logged.
func TestRecorderStoreError(t *testing.T) {
	st := &slowStore{MemoryStore: NewMemoryStore(), fail: errors.New("redis down")}
	var logs testutil.LogBuffer
	r := NewRecorder(st, slog.New(slog.NewTextHandler(&logs, nil)), RecorderOptions{Every: time.Hour})
	for range 3 {
		r.Record(testEvaluation("192.0.2.1"))
	}
	r.Close() // flushes
	if rec, dropped := r.Stats(); rec != 0 || dropped != 3 {
		t.Errorf("recorded %d dropped %d, want 0 and 3", rec, dropped)
	}
	if !strings.Contains(logs.String(), "redis down") {
		t.Errorf("log: %s", logs.String())
	}
}
