package daemon

import (
	"log/slog"
	"strings"
	"testing"

	"vouch/internal/config"
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
	if err := d.update(cfg); err != nil || d.store != store || d.recorder != rec || d.capture != capt {
		t.Errorf("a reload with the same settings rebuilt them (%v)", err)
	}
	r.RUAMailboxes = []string{"rua@example.com"}
	if err := d.update(cfg); err != nil || d.store != store || d.recorder != rec || d.capture == capt || !d.capture.Wanted("rua@example.com") {
		t.Errorf("new mailboxes: store kept %v, recorder kept %v, capture new %v (%v)", d.store == store, d.recorder == rec, d.capture != capt, err)
	}
	r.Send = false
	if err := d.update(cfg); err != nil || d.recorder != nil || d.capture == nil {
		t.Errorf("send = false still records rows (%v)", err)
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

func TestReportStoreOptions(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if o := ReportStoreOptions(cfg); o.Kind != "bolt" || o.Path != "/var/lib/vouch/dmarc-reports.db" {
		t.Errorf("%+v", o)
	}
	c := ReportCaptureOptions(cfg)
	if c.Limits.MaxMessage != 10485760 || c.Limits.MaxXML != 52428800 || c.Discard {
		t.Errorf("%+v", c)
	}
}
