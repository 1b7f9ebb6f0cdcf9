package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vouch/internal/config"
	"vouch/internal/dmarcreport"
	"vouch/internal/dnstest"
	"vouch/internal/testutil"
)

var sendCmdNow = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

// reportStore is a memory store with one message about example.com on
// the previous day and one today: two reports.
func reportStore(t *testing.T) *dmarcreport.MemoryStore {
	t.Helper()
	st := dmarcreport.NewMemoryStore()
	var evs []dmarcreport.Evaluation
	for _, at := range []time.Time{sendCmdNow.Add(-20 * time.Hour), sendCmdNow.Add(-time.Hour)} {
		evs = append(evs, dmarcreport.Evaluation{
			Time: at, Policy: dmarcreport.PolicyPublished{Domain: "example.com", P: "reject"}, RUA: []string{"mailto:dmarc@example.com"},
			Record: dmarcreport.Record{
				Row:         dmarcreport.Row{SourceIP: "192.0.2.1", Count: 1, PolicyEvaluated: dmarcreport.PolicyEvaluated{Disposition: "none", DKIM: "pass", SPF: "pass"}},
				Identifiers: dmarcreport.Identifiers{HeaderFrom: "example.com"},
				AuthResults: dmarcreport.AuthResults{SPF: []dmarcreport.SPFAuthResult{{Domain: "example.com", Result: "pass"}}},
			},
		})
	}
	if err := st.Add(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSendReports(t *testing.T) {
	srv := dnstest.New(t)
	smtp := testutil.NewSMTPServer(t)
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DNS.Servers, cfg.DNS.Timeout, cfg.DNS.Attempts = []string{srv.Addr}, 300*time.Millisecond, 1
	d := &cfg.DMARCReports
	d.OrgName, d.From, d.SMTP = "Example Receiver", "dmarc@receiver.test", smtp.Addr

	run := func(st dmarcreport.Store, dryRun string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := sendReports(cfg, st, dryRun, &out, &errOut, sendCmdNow)
		return code, out.String(), errOut.String()
	}

	// -dry-run: one file, nothing sent, nothing marked.
	st := reportStore(t)
	dir := t.TempDir()
	code, out, errOut := run(st, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "*.xml.gz"))
	if code != 0 || len(files) != 2 || !strings.Contains(out, "example.com 2026-12-04: written "+files[0]+" (for dmarc@example.com) [1 message]\n") || len(smtp.Messages()) != 0 {
		t.Fatalf("dry run: %d %v\n%s%s", code, files, out, errOut)
	}

	// The MTA says later: exit 3, still there.
	smtp.SetReplies(map[string]string{"MAIL": "451 4.3.0 later"})
	code, out, _ = run(st, "")
	if code != sendRetry || strings.Count(out, ": retry: ") != 2 {
		t.Fatalf("temporary failure: %d\n%s", code, out)
	}

	// Sent, with today's messages (before = now + 24h); the claim of the
	// failed run holds in the same store, so a fresh one.
	smtp.SetReplies(nil)
	st = reportStore(t)
	code, out, errOut = run(st, "")
	if code != 0 || out != "example.com 2026-12-04: sent to dmarc@example.com [1 message]\nexample.com 2026-12-05: sent to dmarc@example.com [1 message]\n" || len(smtp.Messages()) != 2 {
		t.Fatalf("send: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(st, "")
	if code != 0 || out != "no report due\n" {
		t.Fatalf("second run: %d\n%s", code, out)
	}

	// No reporting identity: refused before anything is read.
	d.OrgName = ""
	if code, _, errOut = run(reportStore(t), ""); code != 1 || !strings.Contains(errOut, "org_name") {
		t.Fatalf("without org_name: %d %s", code, errOut)
	}
}

func TestReportsSendCommand(t *testing.T) {
	srv := dnstest.New(t)
	conf := testutil.WriteTemp(t, "vouch.toml", fmt.Sprintf(
		"[dns]\nservers = [%q]\n\n[dmarc_reports]\nstore = \"memory\"\norg_name = \"Example\"\nfrom = \"dmarc@receiver.test\"\n", srv.Addr))
	var out, errOut bytes.Buffer
	if code := reportsSend([]string{"-config", conf}, &out, &errOut, sendCmdNow); code != 0 || out.String() != "no report due\n" {
		t.Errorf("empty store: %d %q %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := reportsSend([]string{"-h"}, &out, &errOut, sendCmdNow); code != 0 || !strings.Contains(out.String(), "usage: vouch reports send [-config FILE] [-dry-run DIR]") {
		t.Errorf("-h: %d %s", code, out.String())
	}
	errOut.Reset()
	if code := reportsSend([]string{"-config", conf, "-dry-run", filepath.Join(t.TempDir(), "none")}, &out, &errOut, sendCmdNow); code != 1 || !strings.Contains(errOut.String(), "not a directory") {
		t.Errorf("missing dir: %d %s", code, errOut.String())
	}
	if code := reportsSend([]string{"stray"}, &out, &errOut, sendCmdNow); code != 2 {
		t.Errorf("stray argument: %d", code)
	}
}
