package whitelist

// Nightly download of the exception files from a central server, so the
// admins of several servers can share one copy.
//
// A whitelist lets mail skip checks, so a download is only trusted as far
// as it can be: https only (also across redirects), a size limit, and the
// body must look like a list (text, mostly valid lines, not suddenly empty)
// before it replaces the file in use. Anything else keeps the current file
// untouched.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SyncConfig says where the files are downloaded from.
type SyncConfig struct {
	// URLs is the https:// URL of each kind; a kind that is missing or
	// empty is not synced. The file is written to the Set's path of the
	// kind.
	URLs map[Kind]string
	// MaxSize is the largest body accepted, in bytes (<= 0:
	// DefaultSyncMaxSize).
	MaxSize int64
	// Timeout bounds each download, body included (<= 0:
	// DefaultSyncTimeout).
	Timeout time.Duration
}

// Defaults for a zero SyncConfig field.
const (
	DefaultSyncMaxSize = 4 << 20
	DefaultSyncTimeout = 2 * time.Minute
)

// Values of SyncResult.Status.
const (
	SyncUpdated   = "updated"   // a new file was written and loaded
	SyncUnchanged = "unchanged" // 304, or the same bytes as the current file
	SyncRejected  = "rejected"  // the URL or the download is not acceptable
	SyncFailed    = "failed"    // network, HTTP or local I/O error
)

// SyncResult reports the download of one file. Unless Status is
// SyncUpdated, the file on disk and the list in use are the ones from
// before.
type SyncResult struct {
	Kind    Kind
	URL     string // with any password redacted
	Path    string
	Status  string
	Reason  string // why, for anything but a plain update or 304
	Entries int    // entries of the list in use after the run
}

// syncState is the sidecar file <path>.sync.json: what the last accepted
// download was, for a conditional GET next time.
type syncState struct {
	URL          string    `json:"url"` // redacted
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	SHA256       string    `json:"sha256"` // of the file as written
	Fetched      time.Time `json:"fetched"`
}

func sidecarPath(path string) string { return path + ".sync.json" }

// SyncOnce downloads every configured file once and swaps in those that
// changed and pass the checks. client may be nil (http.DefaultClient); it
// is not modified. log may be nil (slog.Default). The results follow the
// order of Kinds, then any kind SyncOnce does not know.
func SyncOnce(ctx context.Context, client *http.Client, cfg SyncConfig, set *Set, log *slog.Logger) []SyncResult {
	if log == nil {
		log = slog.Default()
	}
	if client == nil {
		client = http.DefaultClient
	}
	kinds := slices.Clone(Kinds)
	var unknown []Kind
	for k := range cfg.URLs {
		if !slices.Contains(Kinds, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	kinds = append(kinds, unknown...)

	var results []SyncResult
	for _, k := range kinds {
		raw := cfg.URLs[k]
		if raw == "" {
			continue
		}
		r := syncOne(ctx, client, cfg, set, k, raw)
		level := slog.LevelInfo
		if r.Status == SyncRejected || r.Status == SyncFailed {
			level = slog.LevelWarn
		}
		log.LogAttrs(ctx, level, "whitelist sync",
			slog.String("kind", string(r.Kind)), slog.String("url", r.URL), slog.String("path", r.Path),
			slog.String("status", r.Status), slog.String("reason", r.Reason), slog.Int("entries", r.Entries))
		results = append(results, r)
	}
	return results
}

func syncOne(ctx context.Context, client *http.Client, cfg SyncConfig, set *Set, k Kind, raw string) SyncResult {
	r := SyncResult{Kind: k, URL: raw, Status: SyncRejected}
	if set != nil {
		r.Path = set.paths[k]
	}
	r.Entries = set.List(k).Len()
	fail := func(status, format string, args ...any) SyncResult {
		r.Status, r.Reason = status, fmt.Sprintf(format, args...)
		return r
	}

	u, err := url.Parse(raw)
	if err != nil {
		r.URL = "(unparsable URL)" // it may hold a password
		return fail(SyncRejected, "bad URL: %v", err)
	}
	r.URL = u.Redacted()
	if !slices.Contains(Kinds, k) {
		return fail(SyncRejected, "unknown list kind %q", k)
	}
	if r.Path == "" {
		return fail(SyncRejected, "no local file is configured for this kind")
	}
	if u.Scheme != "https" || u.Host == "" {
		return fail(SyncRejected, "only https:// URLs are accepted: a whitelist lets mail skip checks, and a download over plain HTTP could be altered on the way")
	}

	cur, err := os.ReadFile(r.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(SyncFailed, "cannot read the current file: %v", err)
	}
	curSum := ""
	if err == nil {
		curSum = sum(cur)
	}
	// Validators only count if the file is still the one they describe:
	// same URL, and not edited (or deleted) since.
	prev, _ := readState(r.Path)
	if prev.URL != r.URL || curSum == "" || prev.SHA256 != curSum {
		prev = syncState{}
	}

	maxSize := cfg.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultSyncMaxSize
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultSyncTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(SyncRejected, "bad URL: %v", err)
	}
	req.Header.Set("User-Agent", "vouch-whitelist-sync")
	if prev.ETag != "" {
		req.Header.Set("If-None-Match", prev.ETag)
	}
	if prev.LastModified != "" {
		req.Header.Set("If-Modified-Since", prev.LastModified)
	}
	resp, err := httpsOnly(client).Do(req)
	if err != nil {
		return fail(SyncFailed, "%v", err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotModified && (prev.ETag != "" || prev.LastModified != ""):
		r.Status = SyncUnchanged
		return r
	case resp.StatusCode != http.StatusOK:
		return fail(SyncFailed, "HTTP status %s", resp.Status)
	}
	if resp.ContentLength > maxSize {
		return fail(SyncRejected, "body of %d bytes is larger than the limit of %d", resp.ContentLength, maxSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSize+1))
	if err == nil && ctx.Err() != nil {
		// The transport can report a clean end of the body when the
		// deadline closed the connection just as the server, seeing that,
		// ended a chunked response: the body may be cut short.
		err = ctx.Err()
	}
	if err != nil {
		return fail(SyncFailed, "reading the body: %v", err)
	}
	if int64(len(body)) > maxSize {
		return fail(SyncRejected, "body is larger than the limit of %d bytes", maxSize)
	}
	if reason := checkDownload(r.Path, body, r.Entries); reason != "" {
		return fail(SyncRejected, "%s", reason)
	}

	next := syncState{
		URL:          r.URL,
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
		SHA256:       sum(body),
		Fetched:      time.Now().UTC().Truncate(time.Second),
	}
	if next.SHA256 == curSum {
		// The server does not do conditional GETs, or the file was
		// restored by hand: nothing to swap, but remember the validators.
		_ = writeState(r.Path, next)
		r.Status, r.Reason = SyncUnchanged, "same content as the current file"
		return r
	}
	if err := writeFileAtomic(r.Path, body, 0o644); err != nil {
		return fail(SyncFailed, "writing the file: %v", err)
	}
	stateErr := writeState(r.Path, next)
	if err := set.reload(k, true); err != nil {
		// Cannot happen short of the file being replaced again under us;
		// the old list stays in use.
		return fail(SyncFailed, "the file was written, but reloading it failed: %v", err)
	}
	r.Status, r.Entries = SyncUpdated, set.List(k).Len()
	if stateErr != nil {
		r.Reason = fmt.Sprintf("could not save %s (next download is unconditional): %v", filepath.Base(sidecarPath(r.Path)), stateErr)
	}
	return r
}

// httpsOnly is a copy of client that refuses to follow a redirect away from
// https.
func httpsOnly(client *http.Client) *http.Client {
	c := *client
	next := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("refusing a redirect to %s: only https:// is accepted", req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// checkDownload returns why body must not replace a list that currently
// has current entries, or "".
func checkDownload(name string, body []byte, current int) string {
	if bytes.IndexByte(body, 0) >= 0 {
		return "the download contains NUL bytes: not a text file"
	}
	if !utf8.Valid(body) {
		return "the download is not valid UTF-8 text"
	}
	l, problems, err := Parse(name, bytes.NewReader(body))
	if err != nil {
		return fmt.Sprintf("the download cannot be parsed: %v", err)
	}
	lines := 0
	for i, line := range strings.Split(string(body), "\n") {
		if i == 0 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if stripComment(line) != "" {
			lines++
		}
	}
	bad := map[int]bool{}
	for _, p := range problems {
		if p.Line > 0 {
			bad[p.Line] = true
		}
	}
	if len(bad)*2 > lines {
		return fmt.Sprintf("%d of its %d entry lines are not valid entries; it does not look like an exception list", len(bad), lines)
	}
	if l.Len() == 0 && current > 0 {
		return fmt.Sprintf("empty download while the current list has %d entries", current)
	}
	return ""
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func readState(path string) (syncState, error) {
	var st syncState
	b, err := os.ReadFile(sidecarPath(path))
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

func writeState(path string, st syncState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(sidecarPath(path), append(b, '\n'), 0o644)
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory is written, synced and renamed over path, so a reader (or a
// crash) sees either the old file or the new one, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable. Best effort: the new file is in
	// place already, a failure here only weakens that across a crash.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// RunSync calls SyncOnce until ctx is done: every day at the local time
// at ("HH:MM"), or, if at is "", every interval. It does not sync at
// start; call SyncOnce for that. A bad schedule is logged and RunSync
// returns at once.
func RunSync(ctx context.Context, client *http.Client, cfg SyncConfig, at string, interval time.Duration, set *Set, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	for {
		next, err := NextRun(time.Now(), at, interval)
		if err != nil {
			log.Error("whitelist sync not scheduled", "err", err)
			return
		}
		log.Debug("whitelist sync scheduled", "at", next)
		if !sleepUntil(ctx, next) {
			return
		}
		SyncOnce(ctx, client, cfg, set, log)
	}
}

// sleepUntil waits for the wall clock to reach t, in steps of at most a
// minute so that a suspend or a clock step does not shift a daily run by
// hours. It reports false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	for {
		d := time.Until(t)
		if d <= 0 {
			return ctx.Err() == nil
		}
		timer := time.NewTimer(min(d, time.Minute))
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// NextRun is the time of the next sync after now: the next "HH:MM" (24-hour
// clock, in now's location) strictly after now, or, if at is "", now plus
// interval.
func NextRun(now time.Time, at string, interval time.Duration) (time.Time, error) {
	if at == "" {
		if interval <= 0 {
			return time.Time{}, errors.New("whitelist sync: no time of day and no positive interval")
		}
		return now.Add(interval), nil
	}
	h, m, err := parseClock(at)
	if err != nil {
		return time.Time{}, err
	}
	y, mo, d := now.Date()
	t := time.Date(y, mo, d, h, m, 0, 0, now.Location())
	if !t.After(now) {
		t = time.Date(y, mo, d+1, h, m, 0, 0, now.Location())
	}
	return t, nil
}

func parseClock(at string) (hour, minute int, err error) {
	hs, ms, ok := strings.Cut(at, ":")
	bad := fmt.Errorf("whitelist sync: bad time of day %q, want HH:MM (00:00 to 23:59)", at)
	if !ok || len(hs) < 1 || len(hs) > 2 || len(ms) != 2 {
		return 0, 0, bad
	}
	hour, err1 := strconv.Atoi(hs)
	minute, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil || hs[0] == '+' || hs[0] == '-' || ms[0] == '+' || ms[0] == '-' ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		return 0, 0, bad
	}
	return hour, minute, nil
}
