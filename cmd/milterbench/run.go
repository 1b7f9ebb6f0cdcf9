package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomilter "github.com/d--j/go-milter"

	"vouch/internal/mtaclient"
	"vouch/internal/sockaddr"
)

// Expectations of a run.
const (
	ExpectSign   = "sign"   // every message accepted with at least one DKIM-Signature added
	ExpectAccept = "accept" // every message accepted (screening, or a milter that does not sign)
)

// Config is one load run.
type Config struct {
	Socket      string // inet:PORT@HOST, unix:/path, … (sockaddr.Parse)
	Concurrency int    // sessions at once
	PerConn     int    // messages per milter connection
	Duration    time.Duration
	Count       int64 // messages in all; 0: until Duration is over
	Corpus      *Corpus
	ClientIP    string
	ClientName  string // "" means "[ip]" (no PTR name), as Postfix says
	HELO        string
	Auth        string
	Rcpt        string
	Expect      string
	VerifyEvery int       // verify every Nth message; 0: none
	Verifier    *Verifier // nil: sampled messages are not verified
	PIDs        []int     // the milter's processes, for RSS and CPU (summed); none: not measured
	ResetHWM    bool
	RSSEvery    time.Duration
	Timeout     time.Duration // per milter read/write
	Label       string
	Flood       int        // hostile connections kept open meanwhile (see flood); 0: none
	FloodStage  string     // FloodOptneg or FloodHeader
	FloodLength int64      // the packet length each announces
	Presign     *Presigner // nil: messages are sent unsigned
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Report is the outcome of a run.
type Report struct {
	Label         string           `json:"label"`
	Socket        string           `json:"socket"`
	Corpus        string           `json:"corpus"`
	Seed          uint64           `json:"seed"`
	Concurrency   int              `json:"concurrency"`
	PerConn       int              `json:"per_conn"`
	Expect        string           `json:"expect"`
	Messages      int64            `json:"messages"` // finished, good or not
	OK            int64            `json:"ok"`
	Connections   int64            `json:"connections"`
	Errors        int64            `json:"errors"`
	ErrorKinds    map[string]int64 `json:"error_kinds"`
	FirstErrors   []string         `json:"first_errors,omitempty"`
	Bytes         int64            `json:"bytes"`
	Seconds       float64          `json:"seconds"`
	MsgsPerSec    float64          `json:"msgs_per_sec"`
	MBPerSec      float64          `json:"mb_per_sec"` // 10^6 bytes of message (header block and body) per second
	Latency       Latency          `json:"latency"`
	Sampled       int              `json:"verify_sampled"`
	Verified      int              `json:"verified"`
	VerifyFailed  int              `json:"verify_failed"`
	VerifyErrors  []string         `json:"verify_errors,omitempty"`
	Signatures    int              `json:"signatures_verified"`
	Proc          *ProcStats       `json:"proc,omitempty"`
	Flood         *FloodStats      `json:"flood,omitempty"`
	GoMaxProcs    int              `json:"-"`
	latencies     []time.Duration
	verifyPending []sample
}

type sample struct {
	spec    Spec
	headers []mtaclient.Header
}

type worker struct {
	lat     []time.Duration
	ok      int64
	bytes   int64
	conns   int64
	kinds   map[string]int64
	errs    []string
	samples []sample
}

func (w *worker) fail(kind, detail string) {
	w.kinds[kind]++
	if len(w.errs) < 5 {
		w.errs = append(w.errs, kind+": "+detail)
	}
}

// classify names what went wrong with a message, "" if nothing did.
func classify(res *mtaclient.Result, expect string, before int) (kind, detail string) {
	if res.Accepted() {
		if expect == ExpectSign && countSigs(res.Headers) <= before {
			return "unsigned", "accepted without a DKIM-Signature"
		}
		return "", ""
	}
	stage := res.Stage
	if stage == "" {
		stage = "eom"
	}
	act := res.Action
	if act == nil {
		return "no_reply@" + stage, "no action"
	}
	detail = fmt.Sprintf("stage %s: %v %d %s", stage, act.Type, act.SMTPCode, strings.TrimSpace(act.SMTPReply))
	switch {
	case act.Type == gomilter.ActionTempFail || act.Type == gomilter.ActionRejectWithCode && act.SMTPCode/100 == 4:
		return "tempfail@" + stage, detail
	case act.Type == gomilter.ActionReject || act.Type == gomilter.ActionRejectWithCode:
		return "reject@" + stage, detail
	case act.Type == gomilter.ActionDiscard:
		return "discard@" + stage, detail
	}
	return "other@" + stage, detail
}

func countSigs(h []mtaclient.Header) int {
	n := 0
	for _, x := range h {
		if strings.EqualFold(x.Name, "DKIM-Signature") {
			n++
		}
	}
	return n
}

func errKind(err error, stage string) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout@" + stage
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "timeout@" + stage
	}
	return "io@" + stage
}

// Run drives the load and returns the report. Sampled signatures are
// verified after the load, so that verifying costs the milter nothing.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	addr, err := sockaddr.Parse(cfg.Socket)
	if err != nil {
		return nil, err
	}
	network, address := addr.Network, addr.Addr
	if strings.HasPrefix(network, "tcp") {
		// 0.0.0.0 / :: in a listen spec mean this host for a client.
		host, port, _ := net.SplitHostPort(address)
		switch host {
		case "0.0.0.0":
			address = net.JoinHostPort("127.0.0.1", port)
		case "::":
			address = net.JoinHostPort("::1", port)
		}
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.PerConn < 1 {
		cfg.PerConn = 1
	}
	if cfg.Count <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("need a duration or a count")
	}
	if cfg.Expect == "" {
		cfg.Expect = ExpectSign
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = mtaclient.DefaultTimeout
	}
	if cfg.RSSEvery <= 0 {
		cfg.RSSEvery = 50 * time.Millisecond
	}
	client := mtaclient.NewPostfixClient(network, address,
		gomilter.WithReadTimeout(cfg.Timeout), gomilter.WithWriteTimeout(cfg.Timeout))

	var watch *procWatch
	if len(cfg.PIDs) > 0 {
		if watch, err = startWatch(cfg.PIDs, cfg.RSSEvery, pssEvery, cfg.ResetHWM); err != nil {
			return nil, fmt.Errorf("-pid %v: %w", cfg.PIDs, err)
		}
	}

	stopFlood := make(chan struct{})
	floodDone := func() *FloodStats { return nil }
	if cfg.Flood > 0 {
		floodDone = flood(network, address, &cfg, stopFlood)
	}

	var next atomic.Int64
	start := time.Now()
	deadline := time.Time{}
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	more := func() (uint64, bool) {
		if ctx.Err() != nil || !deadline.IsZero() && !time.Now().Before(deadline) {
			return 0, false
		}
		i := next.Add(1) - 1
		if cfg.Count > 0 && i >= cfg.Count {
			return 0, false
		}
		return uint64(i), true
	}
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for n := range workers {
		w := &worker{kinds: map[string]int64{}}
		workers[n] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(client, &cfg, more)
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	close(stopFlood)
	floodStats := floodDone()

	rep := &Report{
		Label: cfg.Label, Socket: cfg.Socket, Corpus: cfg.Corpus.Kind, Seed: cfg.Corpus.Seed,
		Concurrency: cfg.Concurrency, PerConn: cfg.PerConn, Expect: cfg.Expect,
		ErrorKinds: map[string]int64{}, Seconds: wall.Seconds(), Flood: floodStats,
	}
	for _, w := range workers {
		rep.latencies = append(rep.latencies, w.lat...)
		rep.OK += w.ok
		rep.Bytes += w.bytes
		rep.Connections += w.conns
		for k, v := range w.kinds {
			rep.ErrorKinds[k] += v
			rep.Errors += v
		}
		for _, e := range w.errs {
			if len(rep.FirstErrors) < 10 {
				rep.FirstErrors = append(rep.FirstErrors, e)
			}
		}
		rep.verifyPending = append(rep.verifyPending, w.samples...)
	}
	rep.Messages = int64(len(rep.latencies))
	if watch != nil {
		rep.Proc = watch.finish(rep.Messages, wall)
	}
	rep.MsgsPerSec = float64(rep.Messages) / wall.Seconds()
	rep.MBPerSec = float64(rep.Bytes) / 1e6 / wall.Seconds()
	rep.Latency = percentiles(rep.latencies)

	sort.Slice(rep.verifyPending, func(i, j int) bool { return rep.verifyPending[i].spec.Index < rep.verifyPending[j].spec.Index })
	rep.Sampled = len(rep.verifyPending)
	if cfg.Verifier != nil {
		for _, s := range rep.verifyPending {
			n, err := cfg.Verifier.Verify(s.headers, s.spec.Body())
			if err != nil {
				rep.VerifyFailed++
				if len(rep.VerifyErrors) < 10 {
					rep.VerifyErrors = append(rep.VerifyErrors, fmt.Sprintf("message %d: %v", s.spec.Index, err))
				}
				continue
			}
			rep.Verified++
			rep.Signatures += n
		}
	}
	rep.verifyPending = nil
	return rep, nil
}

func (w *worker) loop(client *gomilter.Client, cfg *Config, more func() (uint64, bool)) {
	for {
		idx, ok := more()
		if !ok {
			return
		}
		conn := mtaclient.NewConn(client)
		w.conns++
		for n := 0; ; n++ {
			spec := cfg.Corpus.Spec(idx)
			msg := spec.Message(cfg.ClientIP, cfg.ClientName, cfg.HELO, cfg.Auth, cfg.Corpus.Rcpt)
			if cfg.Presign != nil {
				// Before t0: the signing is the remote sender's work, not
				// the milter's.
				h, err := cfg.Presign.Sign(msg.Headers, spec.Body())
				if err != nil {
					w.fail("presign", err.Error())
					break
				}
				msg.Headers = h
			}
			t0 := time.Now()
			stage := "eom"
			var res *mtaclient.Result
			var err error
			if n == 0 {
				stage = "connect"
				_, err = conn.Open(msg)
			}
			if err == nil {
				stage = "eom"
				res, err = conn.Send(msg)
			}
			w.lat = append(w.lat, time.Since(t0))
			w.bytes += spec.Size
			if err != nil {
				w.fail(errKind(err, stage), err.Error())
				if stage == "connect" {
					time.Sleep(20 * time.Millisecond) // no busy loop against a dead socket
				}
				break
			}
			if kind, detail := classify(res, cfg.Expect, 0); kind != "" {
				w.fail(kind, detail)
			} else {
				w.ok++
				if cfg.VerifyEvery > 0 && idx%uint64(cfg.VerifyEvery) == 0 && countSigs(res.Headers) > 0 {
					w.samples = append(w.samples, sample{spec: spec, headers: res.Headers})
				}
			}
			if n+1 >= cfg.PerConn {
				break
			}
			if idx, ok = more(); !ok {
				break
			}
		}
		conn.Close()
	}
}

func percentiles(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) float64 {
		// nearest rank
		i := int(p*float64(len(s))+0.999999) - 1
		i = min(max(i, 0), len(s)-1)
		return ms(s[i])
	}
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
