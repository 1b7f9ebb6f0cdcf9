package dmarcreport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"vouch/internal/submit"
)

// SenderOptions configure a Sender ([dmarc_reports] send_*).
type SenderOptions struct {
	Reporter Reporter
	SMTP     string // host:port of the local MTA
	HELO     string // the name vouch gives in EHLO
	// SendAt is when the previous day's reports go out, "HH:MM" UTC.
	SendAt string
	// MaxReportSize caps a report mail, whatever a rua= !size allows; 0
	// means no cap.
	MaxReportSize int64
	// RetryFor is how long after its day a report that cannot be delivered
	// (temporary failure) is tried again before it is dropped.
	RetryFor time.Duration
	// Holder names this process in claims (host and pid), so that a fleet
	// sharing a store sends each period once.
	Holder string
	// ClaimTTL is how long a claim holds; a period claimed but not done
	// (a temporary failure, a crash) is tried again after it. Default 30m.
	ClaimTTL time.Duration
	Now      func() time.Time // default time.Now
}

// Sender mails the aggregate reports of a Store.
type Sender struct {
	opts   SenderOptions
	sendAt time.Duration // since midnight UTC
	store  Store
	res    TXTResolver
	log    *slog.Logger
}

// NewSender checks opts and makes a Sender; res is for the
// external-destination check.
func NewSender(opts SenderOptions, store Store, res TXTResolver, log *slog.Logger) (*Sender, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClaimTTL <= 0 {
		opts.ClaimTTL = 30 * time.Minute
	}
	if opts.HELO == "" {
		opts.HELO = "localhost"
	}
	if opts.Holder == "" {
		host, _ := os.Hostname()
		opts.Holder = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	var errs []error
	if opts.Reporter.OrgName == "" || opts.Reporter.Email == "" {
		errs = append(errs, errors.New("org_name and from are needed to send reports"))
	}
	if opts.Reporter.Email != "" {
		if _, err := ParseRUA("mailto:" + opts.Reporter.Email); err != nil {
			errs = append(errs, fmt.Errorf("from %q: %v", opts.Reporter.Email, err))
		}
	}
	sendAt, err := parseSendAt(opts.SendAt)
	if err != nil {
		errs = append(errs, err)
	}
	return &Sender{opts: opts, sendAt: sendAt, store: store, res: res, log: log}, errors.Join(errs...)
}

// parseSendAt reads "HH:MM" ("" is 00:30).
func parseSendAt(s string) (time.Duration, error) {
	if s == "" {
		s = "00:30"
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("send_at %q: want HH:MM (UTC)", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Outcomes of one report.
const (
	Sent     = "sent"     // the MTA took it
	Retry    = "retry"    // a temporary failure: the period stays for the next run
	Dropped  = "dropped"  // nothing can be sent: marked done with a log line
	Busy     = "busy"     // another process holds the claim
	Written  = "written"  // DryRun wrote the file
	Unusable = "unusable" // DryRun: no rua= URI to send it to
)

// Result is what became of one period's report.
type Result struct {
	Period
	Messages int64
	To       []string // the addresses it went (or would go) to
	Outcome  string
	Reason   string // why, for retry, dropped, unusable
	File     string // DryRun
}

// Summary is one pass over the due periods.
type Summary struct{ Results []Result }

// Count is how many reports had outcome.
func (s Summary) Count(outcome string) int {
	n := 0
	for _, r := range s.Results {
		if r.Outcome == outcome {
			n++
		}
	}
	return n
}

// SendDue mails the report of every period whose day ended at or before
// before. Each period is claimed first, and marked done once it was sent
// or cannot ever be; after a temporary failure it stays, and the next pass
// (after the claim expired) tries again. The error is the store's: what
// went wrong with a single report is in its Result.
func (s *Sender) SendDue(ctx context.Context, before time.Time) (Summary, error) {
	var sum Summary
	aggs, err := s.store.Unreported(ctx, before)
	if err != nil {
		return sum, err
	}
	for _, a := range aggs {
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		ok, err := s.store.Claim(ctx, a.Period, s.opts.Holder, s.opts.ClaimTTL)
		if err != nil {
			return sum, err
		}
		if !ok {
			sum.Results = append(sum.Results, Result{Period: a.Period, Messages: messages(a), Outcome: Busy})
			continue
		}
		r := s.send(ctx, a)
		s.logResult(r)
		if r.Outcome != Retry {
			if err := s.store.Done(ctx, a); err != nil {
				return sum, err
			}
		}
		sum.Results = append(sum.Results, r)
	}
	return sum, nil
}

// send builds and mails one claimed period's report.
func (s *Sender) send(ctx context.Context, a Aggregate) Result {
	r := Result{Period: a.Period, Messages: messages(a)}
	now := s.opts.Now()
	retry := func(reason string) Result {
		r.Outcome, r.Reason = Retry, reason
		if age := now.Sub(dayEnd(a.Day)); s.opts.RetryFor > 0 && age > s.opts.RetryFor {
			r.Outcome, r.Reason = Dropped, fmt.Sprintf("%s, and retried for %s (retry_for)", reason, age.Round(time.Minute))
		}
		return r
	}
	drop := func(reason string) Result {
		r.Outcome, r.Reason = Dropped, reason
		return r
	}

	rua := s.usableRUA(a)
	var allowed []RUA
	for _, u := range rua {
		ok, err := DestinationAllowed(ctx, s.res, a.Domain, u.Domain())
		if err != nil {
			return retry(fmt.Sprintf("external-destination check for %s: %v", u.Address, err))
		}
		if !ok {
			s.log.Warn("dmarc report: rua address not used: its domain does not accept reports for this one (RFC 7489 §7.1)",
				"domain", a.Domain, "day", a.Day, "rua", u.Address, "record", a.Domain+"._report._dmarc."+u.Domain())
			continue
		}
		allowed = append(allowed, u)
	}
	if len(allowed) == 0 {
		return drop("no usable rua= address")
	}

	fb := Build(s.opts.Reporter, a, now)
	gz, filename, err := Encode(s.opts.Reporter, fb)
	if err != nil {
		// Not something a retry mends, but retry_for ends it; a bug
		// should not silently lose the rows.
		return retry(fmt.Sprintf("encoding the report: %v", err))
	}
	mail := ReportMail(s.opts.Reporter, fb, gz, filename, addresses(allowed), now)
	size := int64(len(mail))
	if s.opts.MaxReportSize > 0 && size > s.opts.MaxReportSize {
		return drop(fmt.Sprintf("the report mail is %d bytes, over max_report_size %d", size, s.opts.MaxReportSize))
	}
	var fits []RUA
	for _, u := range allowed {
		if u.MaxSize > 0 && size > u.MaxSize {
			s.log.Warn("dmarc report: rua address not used: the report is over its size limit",
				"domain", a.Domain, "day", a.Day, "rua", u.String(), "size", size)
			continue
		}
		fits = append(fits, u)
	}
	if len(fits) == 0 {
		return drop(fmt.Sprintf("the report mail (%d bytes) is over the !size limit of every rua= address", size))
	}
	if len(fits) < len(allowed) { // To: names only the addresses it goes to
		mail = ReportMail(s.opts.Reporter, fb, gz, filename, addresses(fits), now)
	}
	r.To = addresses(fits)
	refused, err := submit.Send(ctx, s.opts.SMTP, s.opts.HELO, s.opts.Reporter.Email, r.To, mail)
	if len(refused) > 0 {
		s.log.Warn("dmarc report: the MTA refused rua addresses", "domain", a.Domain, "day", a.Day, "rua", strings.Join(refused, ","))
	}
	switch {
	case err == nil:
		r.Outcome = Sent
		return r
	case submit.IsTemporary(err):
		return retry(err.Error())
	}
	return drop(err.Error())
}

// usableRUA is the period's rua= URIs that can be used; the others are
// logged.
func (s *Sender) usableRUA(a Aggregate) []RUA {
	rua, skipped := ParseRUAs(a.RUA)
	for _, sk := range skipped {
		s.log.Warn("dmarc report: rua URI not used", "domain", a.Domain, "day", a.Day, "rua", sk.URI, "reason", sk.Reason)
	}
	return rua
}

func (s *Sender) logResult(r Result) {
	attrs := []any{"domain", r.Domain, "day", r.Day, "messages", r.Messages, "rua", strings.Join(r.To, ","), "result", r.Outcome}
	switch r.Outcome {
	case Sent:
		s.log.Info("dmarc report sent", attrs...)
	case Retry:
		s.log.Warn("dmarc report not sent, will retry", append(attrs, "reason", r.Reason)...)
	default:
		s.log.Error("dmarc report dropped", append(attrs, "reason", r.Reason)...)
	}
}

// DryRun writes the report of every period whose day ended at or before
// before into dir as its .xml.gz file, and changes nothing in the store
// (no claim, nothing marked done) and sends nothing. The
// external-destination check (DNS) is not made.
func (s *Sender) DryRun(ctx context.Context, before time.Time, dir string) (Summary, error) {
	var sum Summary
	aggs, err := s.store.Unreported(ctx, before)
	if err != nil {
		return sum, err
	}
	now := s.opts.Now()
	for _, a := range aggs {
		r := Result{Period: a.Period, Messages: messages(a)}
		rua := s.usableRUA(a)
		r.To = addresses(rua)
		if len(rua) == 0 {
			r.Outcome, r.Reason = Unusable, "no usable rua= address"
			sum.Results = append(sum.Results, r)
			continue
		}
		gz, filename, err := Encode(s.opts.Reporter, Build(s.opts.Reporter, a, now))
		if err != nil {
			return sum, fmt.Errorf("%s %s: %w", a.Domain, a.Day, err)
		}
		// The name holds the domains: keep it inside dir whatever they are.
		r.File = filepath.Join(dir, strings.NewReplacer("/", "_", "\\", "_").Replace(filename))
		if err := os.WriteFile(r.File, gz, 0o644); err != nil {
			return sum, err
		}
		r.Outcome = Written
		sum.Results = append(sum.Results, r)
	}
	return sum, nil
}

// Run sends the reports until ctx ends: every day at send_at the previous
// day's, and every hour the ones still waiting for a retry. It runs a pass
// at once too, for what a stopped daemon missed.
func (s *Sender) Run(ctx context.Context) {
	for {
		now := s.opts.Now()
		if _, err := s.SendDue(ctx, dueBefore(now, s.sendAt)); err != nil && ctx.Err() == nil {
			s.log.Error("dmarc reports: store", "err", err)
		}
		t := time.NewTimer(nextPass(now, s.sendAt).Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// dueBefore is the end of the days whose reports are due at now: the
// days that ended before the latest send_at (so the hourly retries do
// not send a day's reports before its send_at).
func dueBefore(now time.Time, sendAt time.Duration) time.Time {
	today := now.UTC().Truncate(24 * time.Hour)
	if now.Before(today.Add(sendAt)) {
		return today.AddDate(0, 0, -1)
	}
	return today
}

// nextPass is the next full hour or send_at after now, whichever comes
// first.
func nextPass(now time.Time, sendAt time.Duration) time.Time {
	next := now.UTC().Truncate(time.Hour).Add(time.Hour)
	at := now.UTC().Truncate(24 * time.Hour).Add(sendAt)
	if !at.After(now) {
		at = at.AddDate(0, 0, 1)
	}
	if at.Before(next) {
		return at
	}
	return next
}

func messages(a Aggregate) int64 {
	var n int64
	for _, r := range a.Records {
		n += r.Row.Count
	}
	return n
}

func addresses(rua []RUA) []string {
	out := make([]string, len(rua))
	for i, u := range rua {
		out[i] = u.Address
	}
	return out
}
