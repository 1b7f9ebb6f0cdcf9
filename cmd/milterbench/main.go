// Command milterbench loads a milter the way Postfix talks to it and
// reports throughput, latency, errors and the milter's memory and CPU.
//
//	milterbench -socket inet:8891@127.0.0.1 -c 16 -duration 10s -pubkey mail.txt -pid $(pidof vouch)
//
// It speaks milter protocol 6 like Postfix (Postfix's default macros per
// stage, header values with their leading space and bare-LF folding,
// 64 KiB body chunks, ABORT after each transaction, QUIT at the end), one
// message per milter connection unless -per-conn says more. Messages come
// from a deterministic corpus generated on the fly (bodies are streamed,
// never held in memory). A sample of the signatures is verified with
// go-msgauth against the given public keys, without DNS, after the load.
//
// With -flood N it keeps N hostile connections open meanwhile, each
// announcing a packet of -flood-length bytes (as its first bytes, or after
// a valid OPTNEG as a header: -flood-stage) and sending none of it, and
// reconnecting when the milter closes it: with -pid, the milter's memory
// under that flood and whether ordinary mail still gets through.
//
// With -peer noop|naive it runs a reference milter instead (peer.go), to
// measure against in the same run.
//
// With -dns-serve ZONEFILE it runs a small DNS server (UDP and TCP on
// 127.0.0.1, random port unless -dns-listen) serving the zone's records,
// prints its address and runs until killed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// parseSize reads 1048576, 64KiB, 10MiB, 1GiB, 10M, 1G (powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "B"), "i")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("milterbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "inet:8891@127.0.0.1", "milter socket: inet:PORT@HOST, inet6:PORT@[HOST], unix:/path")
	conc := fs.Int("c", 1, "concurrent milter sessions")
	perConn := fs.Int("per-conn", 1, "messages per milter connection (Postfix: one SMTP session, several transactions)")
	duration := fs.Duration("duration", 0, "run this long (default 10s unless -count is set)")
	count := fs.Int64("count", 0, "send this many messages (with -duration: whichever ends first)")
	corpus := fs.String("corpus", CorpusSmall, "small (2-5 KiB), mixed (2 KiB-10 MiB, mean ~170 KiB) or huge (every message -size bytes)")
	sizeFlag := fs.String("size", "100MiB", "message size of -corpus huge")
	seed := fs.Uint64("seed", 1, "corpus seed")
	domain := fs.String("domain", "example.com", "From domain")
	rcpt := fs.String("rcpt", "rcpt@remote.example", "recipient")
	clientIP := fs.String("client-ip", "127.0.0.1", "SMTP client address given to the milter")
	clientName := fs.String("client-name", "", "SMTP client name (default: [IP], a client without PTR, as Postfix says)")
	helo := fs.String("helo", "client.example.test", "HELO name")
	auth := fs.String("auth", "", "SASL login (sets {auth_type} and {auth_authen})")
	expect := fs.String("expect", ExpectSign, "sign: a message accepted without a new DKIM-Signature is an error; accept: any accept is fine")
	verifyEvery := fs.Int("verify-every", 50, "verify the signatures of every Nth message (0: none)")
	var keys []*PubKey
	fs.Func("pubkey", "public key to verify with: PEM/DER public or private key, or a DKIM TXT record file; [SELECTOR=]FILE; repeatable", func(v string) error {
		k, err := LoadPubKey(v)
		if err != nil {
			return err
		}
		keys = append(keys, k)
		return nil
	})
	var pids []int
	fs.Func("pid", "the milter's process ID (or IDs, comma-separated, for a milter with worker processes: summed): report its peak RSS and CPU time per message", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				return fmt.Errorf("bad process ID %q", f)
			}
			pids = append(pids, n)
		}
		return nil
	})
	resetHWM := fs.Bool("reset-hwm", true, "with -pid, reset the process's VmHWM at the start (/proc/PID/clear_refs) so the peak is this run's")
	timeout := fs.Duration("timeout", 60*time.Second, "read/write timeout per milter command")
	label := fs.String("label", "", "row label (default: the socket)")
	format := fs.String("format", "md", "stdout: md (a markdown table row), json, or tsv (one line: label c msgs msgs/s MB/s p50 p90 p99 max errors verified sampled peak_rss_mib cpu_us_per_msg; - when not measured)")
	header := fs.Bool("header", false, "print the markdown table header before the row")
	jsonFile := fs.String("json", "", "also write the JSON report to this file")
	floodN := fs.Int("flood", 0, "meanwhile keep this many hostile connections open, each announcing a packet of -flood-length bytes and sending none of it (reconnecting when the milter closes it)")
	floodStage := fs.String("flood-stage", FloodOptneg, "optneg: the length is the first thing sent; header: after a valid OPTNEG, as the length of a header packet")
	floodLen := fs.String("flood-length", "4MiB", "packet length the flooding connections announce")
	dnsServe := fs.String("dns-serve", "", "run a DNS server for this zone file instead of a load")
	dnsAddrFile := fs.String("dns-addr-file", "", "with -dns-serve: write the server's address (127.0.0.1:PORT) to this file")
	peer := fs.String("peer", "", "run a reference milter instead of a load: noop (accepts everything: the protocol's ceiling) or naive (buffers and signs with go-msgauth, no checks)")
	peerListen := fs.String("peer-listen", "127.0.0.1:0", "with -peer: HOST:PORT or unix:/path; the address is printed")
	peerKey := fs.String("peer-key", "", "with -peer naive: the PEM private key to sign with (-domain, -selector)")
	selector := fs.String("selector", "mail", "with -peer naive or -presign: the selector")
	presign := fs.String("presign", "", "sign every message with this PEM private key (Ed25519 keeps the client cheap) as d=-domain s=-selector before sending it: inbound verification load")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "milterbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *dnsServe != "" {
		return serveDNS(*dnsServe, *dnsAddrFile, stdout, stderr)
	}
	if *peer != "" {
		return runPeer(*peer, *peerListen, *peerKey, *domain, *selector, stdout, stderr)
	}
	if *expect != ExpectSign && *expect != ExpectAccept {
		fmt.Fprintf(stderr, "milterbench: -expect %q: want sign or accept\n", *expect)
		return 2
	}
	hugeSize, err := parseSize(*sizeFlag)
	if err != nil {
		fmt.Fprintf(stderr, "milterbench: -size: %v\n", err)
		return 2
	}
	floodLength, err := parseSize(*floodLen)
	if err != nil || floodLength > 1<<32-1 || *floodStage != FloodOptneg && *floodStage != FloodHeader {
		fmt.Fprintf(stderr, "milterbench: -flood-length %q / -flood-stage %q: want a size below 4GiB and optneg or header\n", *floodLen, *floodStage)
		return 2
	}
	c, err := NewCorpus(*corpus, *seed, hugeSize, *domain, *rcpt)
	if err != nil {
		fmt.Fprintf(stderr, "milterbench: %v\n", err)
		return 2
	}
	if *duration == 0 && *count == 0 {
		if *corpus == CorpusHuge {
			*count = 1
		} else {
			*duration = 10 * time.Second
		}
	}
	cfg := Config{
		Socket: *socket, Concurrency: *conc, PerConn: *perConn, Duration: *duration, Count: *count,
		Corpus: c, ClientIP: *clientIP, ClientName: *clientName, HELO: *helo, Auth: *auth, Rcpt: *rcpt,
		Expect: *expect, VerifyEvery: *verifyEvery, PIDs: pids, ResetHWM: *resetHWM,
		Timeout: *timeout, Label: *label, Flood: *floodN, FloodStage: *floodStage, FloodLength: floodLength,
	}
	if cfg.Label == "" {
		cfg.Label = cfg.Socket
	}
	if *presign != "" {
		k, err := loadSigningKey(*presign)
		if err != nil {
			fmt.Fprintf(stderr, "milterbench: -presign: %v\n", err)
			return 2
		}
		cfg.Presign = NewPresigner(k, *domain, *selector)
	}
	if len(keys) > 0 {
		cfg.Verifier = &Verifier{Keys: keys}
	} else if *verifyEvery > 0 && *expect == ExpectSign {
		fmt.Fprintln(stderr, "milterbench: no -pubkey: sampled signatures are not verified")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "milterbench: %v\n", err)
		return 1
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if *jsonFile != "" {
		if err := os.WriteFile(*jsonFile, append(js, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "milterbench: %v\n", err)
			return 1
		}
	}
	switch *format {
	case "json":
		fmt.Fprintf(stdout, "%s\n", js)
	case "tsv":
		fmt.Fprintln(stdout, rep.TSVRow())
	default:
		if *header {
			fmt.Fprintln(stdout, MarkdownHeader())
		}
		fmt.Fprintln(stdout, rep.MarkdownRow())
	}
	if f := rep.Flood; f != nil {
		fmt.Fprintf(stderr, "milterbench: flood: %d connections at once (%s, length %d): %d opened, %d closed by the milter, %d could not connect\n",
			f.Conns, f.Stage, f.Length, f.Opened, f.Closed, f.DialError)
	}
	for _, e := range rep.FirstErrors {
		fmt.Fprintf(stderr, "milterbench: error: %s\n", e)
	}
	for _, e := range rep.VerifyErrors {
		fmt.Fprintf(stderr, "milterbench: verify: %s\n", e)
	}
	if rep.Errors > 0 || rep.VerifyFailed > 0 || rep.Messages == 0 {
		return 3
	}
	return 0
}

// MarkdownHeader is the header of the table MarkdownRow writes rows of.
func MarkdownHeader() string {
	return "| label | c | msgs | msgs/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | errors | verified | peak RSS MiB | max sampled RSS MiB | CPU µs/msg |\n" +
		"|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|"
}

// TSVRow is the report as one tab-separated line, for scripts.
func (r *Report) TSVRow() string {
	peak, cpu := "-", "-"
	if r.Proc != nil {
		peak = fmt.Sprintf("%.1f", r.Proc.PeakRSSMiB)
		if r.Proc.MaxPSSMiB > 0 {
			peak = fmt.Sprintf("%.1f PSS", r.Proc.MaxPSSMiB)
		}
		cpu = fmt.Sprintf("%.0f", r.Proc.CPUPerMsgMicro)
	}
	return strings.Join([]string{
		strings.ReplaceAll(r.Label, "\t", " "), fmt.Sprint(r.Concurrency), fmt.Sprint(r.Messages), rate(r.MsgsPerSec),
		fmt.Sprintf("%.2f", r.MBPerSec), fmt.Sprintf("%.2f", r.Latency.P50), fmt.Sprintf("%.2f", r.Latency.P90),
		fmt.Sprintf("%.2f", r.Latency.P99), fmt.Sprintf("%.2f", r.Latency.Max), fmt.Sprint(r.Errors),
		fmt.Sprint(r.Verified), fmt.Sprint(r.Sampled), peak, cpu,
	}, "\t")
}

// rate prints a rate with the precision it deserves.
func rate(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 1:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.3f", x)
}

// MarkdownRow is the report as one markdown table row.
func (r *Report) MarkdownRow() string {
	errs := "0"
	if r.Errors > 0 {
		var kinds []string
		for k, v := range r.ErrorKinds {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(kinds)
		errs = fmt.Sprintf("%d (%s)", r.Errors, strings.Join(kinds, " "))
	}
	verified := fmt.Sprintf("%d/%d", r.Verified, r.Sampled)
	if r.VerifyFailed > 0 {
		verified += fmt.Sprintf(" (%d FAILED)", r.VerifyFailed)
	}
	peak, maxRSS, cpu := "-", "-", "-"
	if r.Proc != nil {
		peak = fmt.Sprintf("%.1f", r.Proc.PeakRSSMiB)
		if !r.Proc.HWMReset {
			peak += "*"
		}
		maxRSS = fmt.Sprintf("%.1f", r.Proc.MaxRSSMiB)
		if r.Proc.MaxPSSMiB > 0 {
			peak = fmt.Sprintf("%.1f PSS", r.Proc.MaxPSSMiB)
		}
		cpu = fmt.Sprintf("%.0f", r.Proc.CPUPerMsgMicro)
	}
	return fmt.Sprintf("| %s | %d | %d | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s |",
		r.Label, r.Concurrency, r.Messages, rate(r.MsgsPerSec), r.MBPerSec,
		r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, errs, verified, peak, maxRSS, cpu)
}
