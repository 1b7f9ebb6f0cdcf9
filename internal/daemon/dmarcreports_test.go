package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"vouch/internal/config"
	"vouch/internal/dmarcreport"
	"vouch/internal/metrics"
	"vouch/internal/testutil"
	"vouch/milter"
)

// TestDMARCReportsLifecycle: the store, recorder and capture are made once
// and kept across reloads that do not change them; new mailboxes make a
// new capture on the same store; turning the section off closes them; a
// store that cannot be opened is an error naming it.
func TestDMARCReportsLifecycle(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	r := &cfg.DMARCReports
	r.Enabled, r.Store, r.RUAMailboxes = true, "memory", []string{"dmarc@example.com"}
	r.OrgName, r.From = "Example Mail", "dmarc-reports@example.net"
	cfg.DNS.Servers = []string{"127.0.0.1:1"} // never the machine's resolver
	d := &dmarcReports{log: slog.New(slog.DiscardHandler)}
	defer d.close()
	if err := d.update(cfg); err != nil {
		t.Fatal(err)
	}
	var env milter.Env
	d.setEnv(&env)
	if d.store == nil || env.Reports == nil || env.Capture == nil || !env.Capture.Wanted("DMARC+x@example.com") {
		t.Fatalf("not built: %+v", d)
	}
	store, rec, capt := d.store, d.recorder, d.capture
	if d.stopSender == nil {
		t.Fatal("send = true started no sender")
	}
	if err := d.update(cfg); err != nil || d.store != store || d.recorder != rec || d.capture != capt {
		t.Errorf("a reload with the same settings rebuilt them (%v)", err)
	}
	r.RUAMailboxes = []string{"rua@example.com"}
	if err := d.update(cfg); err != nil || d.store != store || d.recorder != rec || d.capture == capt || !d.capture.Wanted("rua@example.com") {
		t.Errorf("new mailboxes: store kept %v, recorder kept %v, capture new %v (%v)", d.store == store, d.recorder == rec, d.capture != capt, err)
	}
	r.Send = false
	if err := d.update(cfg); err != nil || d.recorder != nil || d.capture == nil || d.stopSender != nil {
		t.Errorf("send = false still records rows or sends (%v)", err)
	}
	r.Store, r.Path = "bolt", "/nonexistent/dir/reports.db"
	err = d.update(cfg)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/dir/reports.db") || d.store != store {
		t.Errorf("unopenable store: %v; old store kept %v", err, d.store == store)
	}
	r.Enabled = false
	if err := d.update(cfg); err != nil || d.store != nil || d.capture != nil {
		t.Errorf("off: %+v (%v)", d, err)
	}
	d.setEnv(&env)
	if env.Reports != nil || env.Capture != nil {
		t.Error("env keeps them when off")
	}
}

// TestDMARCReportsSending: with send on, serve's sender mails the reports
// of days already over through [dmarc_reports] smtp, at start and without
// waiting for send_at; turning send off stops it.
func TestDMARCReportsSending(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	mta := testutil.NewSMTPServer(t)
	r := &cfg.DMARCReports
	r.Enabled, r.Store, r.SMTP = true, "memory", mta.Addr
	r.OrgName, r.From = "Example Mail", "dmarc-reports@example.net"
	cfg.DNS.Servers = []string{"127.0.0.1:1"} // the rua is at the reported domain: no lookup
	d := &dmarcReports{log: slog.New(slog.DiscardHandler)}
	defer d.close()
	// The store holds a row three days old before the sender starts.
	d.store = dmarcreport.NewMemoryStore()
	d.storeOpts, d.stopPrune = ReportStoreOptions(cfg), make(chan struct{})
	ev := dmarcreport.Evaluation{
		Time:   time.Now().AddDate(0, 0, -3),
		Policy: dmarcreport.PolicyPublished{Domain: "example.org", P: "reject", Pct: 100},
		RUA:    []string{"mailto:rua@example.org"},
		Record: dmarcreport.Record{
			Row:         dmarcreport.Row{SourceIP: "192.0.2.1", Count: 1, PolicyEvaluated: dmarcreport.PolicyEvaluated{Disposition: "none", DKIM: "pass", SPF: "pass"}},
			Identifiers: dmarcreport.Identifiers{HeaderFrom: "example.org", EnvelopeFrom: "example.org"},
			AuthResults: dmarcreport.AuthResults{SPF: []dmarcreport.SPFAuthResult{{Domain: "example.org", Scope: "mfrom", Result: "pass"}}},
		},
	}
	if err := d.store.Add(context.Background(), []dmarcreport.Evaluation{ev}); err != nil {
		t.Fatal(err)
	}
	if err := d.update(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(mta.Messages()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	msgs := mta.Messages()
	if len(msgs) != 1 || msgs[0].From != "dmarc-reports@example.net" || len(msgs[0].To) != 1 || msgs[0].To[0] != "rua@example.org" ||
		!strings.Contains(msgs[0].Data, "Report Domain: example.org") {
		t.Fatalf("sent %+v", msgs)
	}
	r.Send = false
	if err := d.update(cfg); err != nil || d.stopSender != nil {
		t.Errorf("send = false: sender still running (%v)", err)
	}
}

func TestReportStoreOptions(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if o := ReportStoreOptions(cfg); o.Kind != "bolt" || o.Path != "/var/lib/vouch/dmarc-reports.db" {
		t.Errorf("%+v", o)
	}
	c := ReportCaptureOptions(cfg)
	if c.Limits.MaxMessage != 10485760 || c.Limits.MaxXML != 20971520 || c.Discard {
		t.Errorf("%+v", c)
	}
}

// TestDMARCReportsPrune: received reports older than keep_received go.
func TestDMARCReportsPrune(t *testing.T) {
	st := dmarcreport.NewMemoryStore()
	ctx := context.Background()
	for i, end := range []time.Time{time.Now().AddDate(0, 0, -30), time.Now().Add(-time.Hour)} {
		fb := dmarcreport.Feedback{Metadata: dmarcreport.ReportMetadata{OrgName: "google.com", ReportID: fmt.Sprint(i),
			DateRange: dmarcreport.DateRange{Begin: end.Add(-24 * time.Hour).Unix(), End: end.Unix()}}, Policy: dmarcreport.PolicyPublished{Domain: "example.com"}}
		if _, err := st.AddReceived(ctx, dmarcreport.Received{ID: dmarcreport.ReceivedID(&fb), ReceivedAt: end, Feedback: fb}); err != nil {
			t.Fatal(err)
		}
	}
	d := &dmarcReports{log: slog.New(slog.DiscardHandler)}
	d.keep.Store(int64(7 * 24 * time.Hour))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { d.pruneLoop(st, stop); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err := st.ListReceived(ctx, "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 && recs[0].Feedback.Metadata.ReportID == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not pruned: %d reports", len(recs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-done
}

// TestDMARCReportRowsMetrics: the recorder's counts are on /metrics.
func TestDMARCReportRowsMetrics(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DMARCReports.Enabled, cfg.DMARCReports.Store = true, "memory"
	cfg.DMARCReports.OrgName, cfg.DMARCReports.From = "Example Mail", "dmarc-reports@example.net"
	cfg.DNS.Servers = []string{"127.0.0.1:1"}
	m := metrics.New("test")
	d := &dmarcReports{log: slog.New(slog.DiscardHandler), m: m}
	defer d.close()
	if err := d.update(cfg); err != nil {
		t.Fatal(err)
	}
	ev := dmarcreport.Evaluation{Time: time.Now(), Policy: dmarcreport.PolicyPublished{Domain: "example.com", P: "none"},
		Record: dmarcreport.Record{Row: dmarcreport.Row{SourceIP: "192.0.2.1", Count: 1}}}
	d.recorder.Record(ev)
	d.recorder.Record(ev)
	d.recorder.Close() // writes them
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"vouch_dmarc_report_rows_total 2", "vouch_dmarc_report_rows_dropped_total 0"} {
		if !strings.Contains(rr.Body.String(), want+"\n") {
			t.Errorf("no %q in /metrics", want)
		}
	}
}
