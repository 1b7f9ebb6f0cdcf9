package main

import (
	"os"
	"testing"
	"time"
)

// The PSS of several processes is read every pssEvery (and at start and
// end), not at every RSS sample: reading smaps_rollup is costly enough to
// disturb the milter being measured.
func TestProcWatchPSSEvery(t *testing.T) {
	self := os.Getpid()
	for _, tc := range []struct {
		name     string
		pids     []int
		pssEvery time.Duration
		wantPSS  func(rss, pss int) bool
	}{
		{"rare", []int{self, self}, time.Hour, func(rss, pss int) bool { return pss == 2 && rss >= 10 }},
		{"every sample", []int{self, self}, 0, func(rss, pss int) bool { return pss == rss }},
		{"one process: no PSS", []int{self}, 0, func(rss, pss int) bool { return pss == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := startWatch(tc.pids, 2*time.Millisecond, tc.pssEvery, false)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(60 * time.Millisecond)
			st := w.finish(1, time.Second)
			if st.Error != "" {
				t.Fatal(st.Error)
			}
			if !tc.wantPSS(st.RSSSamples, st.PSSSamples) {
				t.Errorf("%d RSS samples, %d PSS samples", st.RSSSamples, st.PSSSamples)
			}
			if st.PSSSamples > 0 && st.MaxPSSMiB <= 0 {
				t.Errorf("PSS sampled %d times but max PSS %.1f MiB", st.PSSSamples, st.MaxPSSMiB)
			}
		})
	}
}
