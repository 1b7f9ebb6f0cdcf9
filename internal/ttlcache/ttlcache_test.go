package ttlcache

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counter is a Fill that counts its calls and returns key-derived values.
type counter struct {
	calls atomic.Int32
	ttl   time.Duration
	err   error
}

func (f *counter) fill(v string) Fill[string] {
	return func(context.Context) (string, time.Duration, error) {
		f.calls.Add(1)
		return v, f.ttl, f.err
	}
}

func TestExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := New[string, string](10)
	c.Now = func() time.Time { return now }
	f := &counter{ttl: time.Minute}
	ctx := context.Background()
	tests := []struct {
		advance time.Duration
		src     Source
		calls   int32
	}{
		{0, Filled, 1},
		{30 * time.Second, Hit, 1},
		{29 * time.Second, Hit, 1},
		{time.Second, Filled, 2}, // exactly the TTL: expired
		{59 * time.Second, Hit, 2},
	}
	for i, tc := range tests {
		now = now.Add(tc.advance)
		v, src, err := c.Get(ctx, "k", f.fill("v"))
		if err != nil || v != "v" || src != tc.src || f.calls.Load() != tc.calls {
			t.Fatalf("step %d: %q %v %v, %d calls; want %v, %d calls", i, v, src, err, f.calls.Load(), tc.src, tc.calls)
		}
	}
}

// TestPeek: Peek sees what Get would answer from the cache (fresh values
// only) and never fills.
func TestPeek(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := New[string, string](10)
	c.Now = func() time.Time { return now }
	f := &counter{ttl: time.Minute}
	tests := []struct {
		advance time.Duration
		fill    bool // Get before Peek
		want    string
		ok      bool
	}{
		{0, false, "", false}, // empty cache
		{0, true, "v", true},
		{59 * time.Second, false, "v", true},
		{time.Second, false, "", false}, // exactly the TTL: expired
		{0, false, "", false},           // and dropped
		{0, true, "v", true},            // filled again
	}
	for i, tc := range tests {
		now = now.Add(tc.advance)
		if tc.fill {
			c.Get(context.Background(), "k", f.fill("v"))
		}
		v, ok := c.Peek("k")
		if v != tc.want || ok != tc.ok {
			t.Fatalf("step %d: Peek = %q, %v; want %q, %v", i, v, ok, tc.want, tc.ok)
		}
	}
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d fills, want 2 (Peek must not fill)", n)
	}
}

func TestNotKept(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		max  int
		ttl  time.Duration
		err  error
	}{
		{"error", 10, time.Minute, errors.New("directory down")},
		{"ttl 0", 10, 0, nil},
		{"negative ttl", 10, -time.Second, nil},
		{"size 0", 0, time.Minute, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New[string, string](tc.max)
			f := &counter{ttl: tc.ttl, err: tc.err}
			for range 3 {
				if _, src, err := c.Get(ctx, "k", f.fill("v")); err != tc.err || src != Filled {
					t.Fatalf("%v %v", src, err)
				}
			}
			if f.calls.Load() != 3 || c.Len() != 0 {
				t.Fatalf("%d calls, %d entries; want 3, 0", f.calls.Load(), c.Len())
			}
		})
	}
	// After a failure the next lookup is asked and kept.
	c := New[string, string](10)
	bad := &counter{ttl: time.Minute, err: errors.New("boom")}
	c.Get(ctx, "k", bad.fill(""))
	good := &counter{ttl: time.Minute}
	for range 2 {
		if v, _, err := c.Get(ctx, "k", good.fill("ok")); v != "ok" || err != nil {
			t.Fatalf("after an error: %q %v", v, err)
		}
	}
	if good.calls.Load() != 1 {
		t.Fatalf("%d calls after the error, want 1", good.calls.Load())
	}
}

// TestSizeBound: the least recently used entry goes first.
func TestSizeBound(t *testing.T) {
	c := New[string, string](3)
	f := &counter{ttl: time.Hour}
	get := func(k string) Source {
		_, src, _ := c.Get(context.Background(), k, f.fill(k))
		return src
	}
	for _, k := range []string{"a", "b", "c", "a", "d"} { // d evicts b
		get(k)
		if c.Len() > 3 {
			t.Fatalf("%d entries", c.Len())
		}
	}
	for k, want := range map[string]Source{"a": Hit, "c": Hit, "d": Hit} {
		if got := get(k); got != want {
			t.Errorf("%s: %v, want %v", k, got, want)
		}
	}
	if get("b") != Filled {
		t.Error("b was not evicted")
	}
	for i := range 500 {
		get(strings.Repeat("x", i))
		if c.Len() > 3 {
			t.Fatalf("%d entries", c.Len())
		}
	}
}

// TestCollapse: concurrent misses of one key share one lookup, and its
// error; other keys are not held up.
func TestCollapse(t *testing.T) {
	for _, fail := range []error{nil, errors.New("boom")} {
		c := New[string, string](10)
		gate := make(chan struct{})
		var calls atomic.Int32
		fill := func(context.Context) (string, time.Duration, error) {
			calls.Add(1)
			<-gate
			return "v", time.Minute, fail
		}
		var wg sync.WaitGroup
		var joined atomic.Int32
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, src, err := c.Get(context.Background(), "k", fill)
				if err != fail || fail == nil && v != "v" {
					t.Errorf("%q %v", v, err)
				}
				if src == Joined {
					joined.Add(1)
				}
			}()
		}
		// Another key goes through while "k" is stuck.
		if v, _, err := c.Get(context.Background(), "other", func(context.Context) (string, time.Duration, error) { return "o", time.Minute, nil }); v != "o" || err != nil {
			t.Fatalf("other key: %q %v", v, err)
		}
		// Open the gate once all 20 wait on the one lookup.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			n := 0
			c.mu.Lock()
			if cl := c.calls["k"]; cl != nil {
				n = cl.joined
			}
			c.mu.Unlock()
			if n == 19 {
				break
			}
		}
		close(gate)
		wg.Wait()
		if calls.Load() != 1 || joined.Load() != 19 {
			t.Fatalf("error %v: %d lookups for 20 concurrent misses (%d joined), want 1 (19)", fail, calls.Load(), joined.Load())
		}
	}
}

// TestCallerDeadline: a caller stops waiting at its own deadline; the
// lookup finishes for the others and is kept.
func TestCallerDeadline(t *testing.T) {
	c := New[string, string](10)
	gate := make(chan struct{})
	fill := func(ctx context.Context) (string, time.Duration, error) {
		<-gate
		return "v", time.Minute, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := c.Get(ctx, "k", fill); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the caller's deadline, got %v", err)
	}
	done := make(chan string)
	go func() {
		v, _, _ := c.Get(context.Background(), "k", fill)
		done <- v
	}()
	time.Sleep(10 * time.Millisecond)
	close(gate)
	if v := <-done; v != "v" {
		t.Fatalf("joined lookup: %q (the first caller's deadline leaked into it?)", v)
	}
	if _, src, _ := c.Get(context.Background(), "k", fill); src != Hit {
		t.Fatalf("not kept: %v", src)
	}
}

// TestPanicIsAnError: a panicking lookup fails its callers and is not
// kept; the process goes on.
func TestPanicIsAnError(t *testing.T) {
	c := New[string, string](10)
	_, _, err := c.Get(context.Background(), "k", func(context.Context) (string, time.Duration, error) { panic("bad record") })
	if err == nil || !strings.Contains(err.Error(), "bad record") {
		t.Fatalf("got %v", err)
	}
	if c.Len() != 0 {
		t.Fatal("a panic was kept")
	}
}
