package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns utime+stime of pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procMem returns VmRSS and VmHWM of pid, in bytes.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(value)
		if len(f) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// resetHWM resets VmHWM to the current RSS (Linux 4.0+, needs the right to
// write the process's clear_refs: the same user or root).
func resetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// pssEvery is how often the PSS of several processes is sampled. Reading
// /proc/PID/smaps_rollup walks the process's page tables under its mmap
// lock: for rspamd's four processes about 8 ms per sample here, so at the
// RSS interval (50 ms) the watch itself took a sixth of a CPU from the
// machine and stalled the milter it measures.
const pssEvery = time.Second

// procWatch samples the milter's RSS while the load runs. With several
// processes (a milter with worker processes), RSS and CPU are summed and
// the sum of their PSS is sampled too, every pssEvery.
type procWatch struct {
	pids       []int
	cpu0       time.Duration
	hwmReset   bool
	pssEvery   time.Duration
	stop       chan struct{}
	done       chan struct{}
	mu         sync.Mutex
	maxRSS     int64
	maxPSS     int64
	pssAt      time.Time // last PSS sample
	samples    int
	pssSamples int
	err        error
}

func startWatch(pids []int, every, pssEvery time.Duration, reset bool) (*procWatch, error) {
	w := &procWatch{pids: pids, pssEvery: pssEvery, stop: make(chan struct{}), done: make(chan struct{})}
	if reset {
		w.hwmReset = true
		for _, pid := range pids {
			w.hwmReset = resetHWM(pid) == nil && w.hwmReset
		}
	}
	cpu, err := sumCPU(pids)
	if err != nil {
		return nil, err
	}
	w.cpu0 = cpu
	w.sample(true)
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.sample(false)
			}
		}
	}()
	return w, nil
}

// procPSS returns the proportional set size of pid (shared pages divided
// among the processes that map them), in bytes.
func procPSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/smaps_rollup: no Pss", pid)
}

func sumCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := procCPU(pid)
		if err != nil {
			return sum, err
		}
		sum += d
	}
	return sum, nil
}

func sumMem(pids []int) (rss, hwm int64, err error) {
	for _, pid := range pids {
		r, h, err := procMem(pid)
		if err != nil {
			return rss, hwm, err
		}
		rss += r
		hwm += h
	}
	return rss, hwm, nil
}

// sample reads the RSS, and the PSS when there are several processes and
// it is due or final.
func (w *procWatch) sample(final bool) {
	rss, _, err := sumMem(w.pids)
	var pss int64
	readPSS := err == nil && len(w.pids) > 1 && (final || time.Since(w.pssAt) >= w.pssEvery)
	if readPSS {
		w.pssAt = time.Now()
		for _, pid := range w.pids {
			p, perr := procPSS(pid)
			if perr != nil {
				err = perr
				break
			}
			pss += p
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.err = err
		return
	}
	w.samples++
	w.maxRSS = max(w.maxRSS, rss)
	if readPSS {
		w.pssSamples++
		w.maxPSS = max(w.maxPSS, pss)
	}
}

// ProcStats is what was measured of the milter process.
type ProcStats struct {
	PIDs           []int   `json:"pids"`
	PeakRSSMiB     float64 `json:"peak_rss_mib"`          // VmHWM at the end (reset at the start when possible)
	HWMReset       bool    `json:"hwm_reset"`             // false: VmHWM is the peak since the process started
	MaxRSSMiB      float64 `json:"max_rss_mib"`           // largest sampled VmRSS during the run
	MaxPSSMiB      float64 `json:"max_pss_mib,omitempty"` // several processes: largest sampled sum of their PSS (shared pages counted once)
	EndRSSMiB      float64 `json:"end_rss_mib"`           // VmRSS at the end
	RSSSamples     int     `json:"rss_samples"`           // number of samples
	PSSSamples     int     `json:"pss_samples,omitempty"` // of them with the PSS read (every pssEvery, and at start and end)
	CPUSeconds     float64 `json:"cpu_seconds"`           // utime+stime during the run
	CPUPerMsgMicro float64 `json:"cpu_per_msg_us"`        // CPUSeconds / messages, microseconds
	CPUUtilization float64 `json:"cpu_utilization"`       // CPUSeconds / wall time (1.0 = one core)
	Error          string  `json:"error,omitempty"`       // the process went away, …
}

func (w *procWatch) finish(msgs int64, wall time.Duration) *ProcStats {
	close(w.stop)
	<-w.done
	w.sample(true)
	st := &ProcStats{PIDs: w.pids, HWMReset: w.hwmReset}
	rss, hwm, err := sumMem(w.pids)
	cpu, err2 := sumCPU(w.pids)
	if err == nil {
		err = err2
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		err = w.err
	}
	if err != nil {
		st.Error = err.Error()
	}
	const mib = 1 << 20
	st.PeakRSSMiB = float64(max(hwm, w.maxRSS)) / mib
	st.MaxRSSMiB = float64(w.maxRSS) / mib
	st.MaxPSSMiB = float64(w.maxPSS) / mib
	st.EndRSSMiB = float64(rss) / mib
	st.RSSSamples = w.samples
	st.PSSSamples = w.pssSamples
	d := cpu - w.cpu0
	st.CPUSeconds = d.Seconds()
	if msgs > 0 {
		st.CPUPerMsgMicro = float64(d.Microseconds()) / float64(msgs)
	}
	if wall > 0 {
		st.CPUUtilization = d.Seconds() / wall.Seconds()
	}
	return st
}
