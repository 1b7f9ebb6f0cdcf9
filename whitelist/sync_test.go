package whitelist

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin on machines without zoneinfo

	"vouch/internal/testutil"
)

const (
	currentList = "# current\n192.0.2.1\n192.0.2.2\npartner.test\n"
	newList     = "# from the central server\r\n198.51.100.0/24\r\n*.partner.test\r\nbad!entry\r\n"
)

// recorder keeps the headers of the requests a test server saw.
type recorder struct {
	mu   sync.Mutex
	reqs []http.Header
	urls []string
}

func (r *recorder) add(req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req.Header.Clone())
	r.urls = append(r.urls, req.URL.Path)
}

func (r *recorder) last(t *testing.T) http.Header {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request")
	}
	return r.reqs[len(r.reqs)-1]
}

func (r *recorder) first() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return nil
	}
	return r.reqs[0]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// listServer serves a list with an ETag and Last-Modified, and honours
// If-None-Match. Its content can be changed.
type listServer struct {
	recorder
	ts      *httptest.Server
	content string
	etag    string
}

func newListServer(t *testing.T, content, etag string) *listServer {
	s := &listServer{content: content, etag: etag}
	s.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.add(r)
		s.mu.Lock()
		content, etag := s.content, s.etag
		s.mu.Unlock()
		if etag != "" {
			w.Header().Set("ETag", etag)
			w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		io.WriteString(w, content)
	}))
	t.Cleanup(s.ts.Close)
	return s
}

func (s *listServer) set(content, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.content, s.etag = content, etag
}

// syncSetup is a Set whose reverse list is current ("" = no file).
func syncSetup(t *testing.T, current string) (*Set, string) {
	t.Helper()
	files := map[Kind]string{}
	if current != "" {
		files[Reverse] = current
	}
	s, paths := newTestSet(t, files)
	return s, paths[Reverse]
}

func syncReverse(t *testing.T, client *http.Client, url string, set *Set) SyncResult {
	t.Helper()
	cfg := SyncConfig{URLs: map[Kind]string{Reverse: url}, MaxSize: 1024, Timeout: 2 * time.Second}
	res := SyncOnce(context.Background(), client, cfg, set, discardLog())
	if len(res) != 1 {
		t.Fatalf("SyncOnce: %d results, want 1", len(res))
	}
	if res[0].Kind != Reverse || res[0].Path != set.Path(Reverse) {
		t.Errorf("result %+v", res[0])
	}
	return res[0]
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dirNames lists a directory, to see that no temporary file is left.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestSyncUpdateThenNotModified(t *testing.T) {
	srv := newListServer(t, newList, `"v1"`)
	set, path := syncSetup(t, currentList)
	url := srv.ts.URL + "/ReverseXcpt.dat"

	r := syncReverse(t, srv.ts.Client(), url, set)
	if r.Status != SyncUpdated || r.Entries != 2 || r.URL != url {
		t.Fatalf("first sync: %+v", r)
	}
	if got := readString(t, path); got != newList {
		t.Errorf("file = %q", got)
	}
	if l := set.List(Reverse); l.Len() != 2 || !matchesIP(l, "198.51.100.9") || matchesIP(l, "192.0.2.1") {
		t.Errorf("Set not updated: %d entries", l.Len())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	h := srv.last(t)
	if h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
		t.Errorf("first request was conditional: %v", h)
	}
	st, err := readState(path)
	if err != nil || st.URL != url || st.ETag != `"v1"` || st.LastModified == "" || st.SHA256 != sum([]byte(newList)) {
		t.Errorf("sidecar %+v, %v", st, err)
	}
	if names := dirNames(t, filepath.Dir(path)); !slices.Equal(names, []string{"ReverseXcpt.dat", "ReverseXcpt.dat.sync.json"}) {
		t.Errorf("directory holds %q", names)
	}

	// Second run: conditional, 304.
	before := set.List(Reverse)
	r = syncReverse(t, srv.ts.Client(), url, set)
	if r.Status != SyncUnchanged || r.Entries != 2 {
		t.Errorf("second sync: %+v", r)
	}
	h = srv.last(t)
	if h.Get("If-None-Match") != `"v1"` || h.Get("If-Modified-Since") != "Mon, 02 Jan 2006 15:04:05 GMT" {
		t.Errorf("second request headers: %v", h)
	}
	if set.List(Reverse) != before || readString(t, path) != newList {
		t.Error("304 changed something")
	}

	// The server has a new version.
	srv.set("192.0.2.99\n", `"v2"`)
	r = syncReverse(t, srv.ts.Client(), url, set)
	if r.Status != SyncUpdated || r.Entries != 1 || !matchesIP(set.List(Reverse), "192.0.2.99") {
		t.Errorf("third sync: %+v", r)
	}
	if srv.last(t).Get("If-None-Match") != `"v1"` {
		t.Error("third request not conditional")
	}
}

func TestSyncValidatorsIgnored(t *testing.T) {
	srv := newListServer(t, newList, `"v1"`)
	set, path := syncSetup(t, currentList)
	url := srv.ts.URL + "/a.dat"
	if r := syncReverse(t, srv.ts.Client(), url, set); r.Status != SyncUpdated {
		t.Fatalf("%+v", r)
	}

	// Another URL: the sidecar is not for it.
	if r := syncReverse(t, srv.ts.Client(), srv.ts.URL+"/b.dat", set); r.Status != SyncUnchanged || r.Reason == "" {
		t.Errorf("other URL: %+v", r) // the same bytes: nothing to swap
	}
	if h := srv.last(t); h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
		t.Errorf("conditional request for a new URL: %v", h)
	}
	if st, _ := readState(path); st.URL != srv.ts.URL+"/b.dat" {
		t.Errorf("sidecar URL %q", st.URL)
	}

	// Edited by hand since: download again and put the central copy back.
	writeFile(t, path, "192.0.2.200\n", 2*time.Second)
	set.Reload(false)
	r := syncReverse(t, srv.ts.Client(), srv.ts.URL+"/b.dat", set)
	if h := srv.last(t); h.Get("If-None-Match") != "" {
		t.Errorf("conditional request for an edited file: %v", h)
	}
	if r.Status != SyncUpdated || readString(t, path) != newList {
		t.Errorf("edited file not replaced: %+v", r)
	}

	// Deleted: the same.
	os.Remove(path)
	set.Reload(false)
	r = syncReverse(t, srv.ts.Client(), srv.ts.URL+"/b.dat", set)
	if r.Status != SyncUpdated || readString(t, path) != newList || set.List(Reverse).Len() != 2 {
		t.Errorf("deleted file not restored: %+v", r)
	}

	// A garbled sidecar is ignored too.
	os.WriteFile(sidecarPath(path), []byte("{not json"), 0o644)
	r = syncReverse(t, srv.ts.Client(), srv.ts.URL+"/b.dat", set)
	if h := srv.last(t); h.Get("If-None-Match") != "" || r.Status != SyncUnchanged {
		t.Errorf("garbled sidecar: %+v, %v", r, h)
	}
}

func TestSyncRejected(t *testing.T) {
	big := strings.Repeat("192.0.2.1\n", 150) // 1500 bytes > MaxSize 1024
	tests := []struct {
		name    string
		handler http.HandlerFunc
		url     string // instead of the server's
		status  string
		reason  string
	}{
		{
			name: "truncated",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(http.StatusOK)
				io.WriteString(w, "192.0.2.77\n192.0.2.78\n")
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					panic(err)
				}
				conn.Close()
			},
			status: SyncFailed, reason: "unexpected EOF",
		},
		{
			name: "binary",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("192.0.2.77\n\x00\x01\x02\x89PNG\n"))
			},
			status: SyncRejected, reason: "NUL",
		},
		{
			name: "not UTF-8",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "192.0.2.77 ; caf\xe9\n")
			},
			status: SyncRejected, reason: "UTF-8",
		},
		{
			name: "mostly junk",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "<html>\n<body>\n<h1>Not Found</h1>\n\n</body>\n</html>\n192.0.2.77\n")
			},
			status: SyncRejected, reason: "5 of its 6 entry lines are not valid",
		},
		{
			name: "empty",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "# nothing here\n\n")
			},
			status: SyncRejected, reason: "empty download while the current list has 3 entries",
		},
		{
			name: "zero bytes",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "0")
			},
			status: SyncRejected, reason: "empty download",
		},
		{
			name: "oversized, chunked",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush() // no Content-Length
				io.WriteString(w, big)
			},
			status: SyncRejected, reason: "larger than the limit of 1024 bytes",
		},
		{
			name: "oversized, Content-Length",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, big)
			},
			status: SyncRejected, reason: "body of 1500 bytes is larger",
		},
		{
			name: "500",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "192.0.2.77", http.StatusInternalServerError)
			},
			status: SyncFailed, reason: "500 Internal Server Error",
		},
		{
			name:    "404",
			handler: http.NotFound,
			status:  SyncFailed, reason: "404",
		},
		{
			name: "304 unasked",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotModified)
			},
			status: SyncFailed, reason: "304",
		},
		{
			name: "timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			},
			status: SyncFailed, reason: "deadline exceeded",
		},
		{
			name: "slow body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "192.0.2.77\n")
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			},
			status: SyncFailed, reason: "reading the body",
		},
		{
			name: "redirect to http",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://"+r.Host+"/plain", http.StatusFound)
			},
			status: SyncFailed, reason: "only https:// is accepted",
		},
		{name: "http URL", url: "http://example.test/ReverseXcpt.dat", status: SyncRejected, reason: "only https:// URLs"},
		{name: "ftp URL", url: "ftp://example.test/ReverseXcpt.dat", status: SyncRejected, reason: "only https:// URLs"},
		{name: "no host", url: "https:///ReverseXcpt.dat", status: SyncRejected, reason: "only https:// URLs"},
		{name: "bad URL", url: "https://exa mple.test/%zz", status: SyncRejected, reason: "bad URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec.add(r)
				if tt.handler == nil {
					t.Errorf("request to %s", r.URL)
					return
				}
				tt.handler(w, r)
			}))
			defer ts.Close()
			set, path := syncSetup(t, currentList)
			before := set.List(Reverse)
			url := tt.url
			if url == "" {
				url = ts.URL + "/ReverseXcpt.dat"
			}
			cfg := SyncConfig{URLs: map[Kind]string{Reverse: url}, MaxSize: 1024, Timeout: 300 * time.Millisecond}
			res := SyncOnce(context.Background(), ts.Client(), cfg, set, discardLog())
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			r := res[0]
			if r.Status != tt.status || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("got %s (%s), want %s (%s)", r.Status, r.Reason, tt.status, tt.reason)
			}
			if r.Entries != 3 {
				t.Errorf("Entries = %d, want the current 3", r.Entries)
			}
			if got := readString(t, path); got != currentList {
				t.Errorf("file changed to %q", got)
			}
			if set.List(Reverse) != before {
				t.Error("list changed")
			}
			if names := dirNames(t, filepath.Dir(path)); !slices.Equal(names, []string{"ReverseXcpt.dat"}) {
				t.Errorf("directory holds %q", names)
			}
			if tt.url != "" && rec.count() != 0 {
				t.Errorf("%d requests to the test server", rec.count())
			}
		})
	}
}

func TestSyncEmptyWhenCurrentEmpty(t *testing.T) {
	srv := newListServer(t, "# no partners yet\n", "")
	set, path := syncSetup(t, "") // no file
	r := syncReverse(t, srv.ts.Client(), srv.ts.URL+"/x", set)
	if r.Status != SyncUpdated || r.Entries != 0 || readString(t, path) != "# no partners yet\n" {
		t.Errorf("%+v", r)
	}
	// The same bytes again, without validators: unchanged, no rewrite.
	fi1, _ := os.Stat(path)
	r = syncReverse(t, srv.ts.Client(), srv.ts.URL+"/x", set)
	fi2, _ := os.Stat(path)
	if r.Status != SyncUnchanged || !os.SameFile(fi1, fi2) {
		t.Errorf("second run: %+v, file rewritten: %v", r, !os.SameFile(fi1, fi2))
	}
}

func TestSyncFollowsHTTPSRedirect(t *testing.T) {
	srv := newListServer(t, newList, "")
	mux := http.NewServeMux()
	mux.Handle("/new", srv.ts.Config.Handler)
	mux.Handle("/old", http.RedirectHandler("/new", http.StatusMovedPermanently))
	srv.ts.Config.Handler = mux
	set, _ := syncSetup(t, currentList)
	if r := syncReverse(t, srv.ts.Client(), srv.ts.URL+"/old", set); r.Status != SyncUpdated {
		t.Errorf("%+v", r)
	}
}

func TestSyncAllKinds(t *testing.T) {
	srv := newListServer(t, newList, `"x"`)
	set, paths := newTestSet(t, map[Kind]string{Reverse: currentList, HELO: currentList})
	var logs testutil.LogBuffer
	cfg := SyncConfig{URLs: map[Kind]string{
		Reverse:  "https://user:s3cret@" + strings.TrimPrefix(srv.ts.URL, "https://") + "/r",
		HELO:     srv.ts.URL + "/nothing?x=1", // served the same list
		Mail:     "http://" + strings.TrimPrefix(srv.ts.URL, "https://") + "/m",
		"bounce": srv.ts.URL + "/b",
	}}
	res := SyncOnce(context.Background(), srv.ts.Client(), cfg, set, slog.New(slog.NewTextHandler(&logs, nil)))
	var got []string
	for _, r := range res {
		got = append(got, fmt.Sprintf("%s %s %d", r.Kind, r.Status, r.Entries))
	}
	want := []string{"reverse updated 2", "helo updated 2", "mail rejected 0", "bounce rejected 0"}
	if !slices.Equal(got, want) {
		t.Errorf("results %q, want %q", got, want)
	}
	if res[0].URL != "https://user:xxxxx@"+strings.TrimPrefix(srv.ts.URL, "https://")+"/r" {
		t.Errorf("URL %q", res[0].URL)
	}
	if h := srv.first(); !strings.HasPrefix(h.Get("Authorization"), "Basic ") {
		t.Errorf("no basic auth from the URL: %v", h)
	}
	if s := readString(t, sidecarPath(paths[Reverse])); strings.Contains(s, "s3cret") {
		t.Errorf("password in the sidecar: %s", s)
	}
	if _, err := os.Stat(paths[Mail]); err == nil {
		t.Error("mail file written")
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d log lines:\n%s", len(lines), logs.String())
	}
	for i, want := range []string{
		"level=INFO msg=\"whitelist sync\" kind=reverse url=https://user:xxxxx@",
		"kind=helo", "level=WARN msg=\"whitelist sync\" kind=mail url=http://", "kind=bounce",
	} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "status=") || !strings.Contains(lines[i], "entries=") {
			t.Errorf("log line %d = %s\nwant %s", i, lines[i], want)
		}
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Error("password logged")
	}

	// A Set without a path for a kind.
	dir := t.TempDir()
	set2, err := NewSet(map[Kind]string{HELO: filepath.Join(dir, "h.dat")}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	res = SyncOnce(context.Background(), srv.ts.Client(), SyncConfig{URLs: map[Kind]string{Reverse: srv.ts.URL, Mail: ""}}, set2, nil)
	if len(res) != 1 || res[0].Status != SyncRejected || !strings.Contains(res[0].Reason, "no local file") {
		t.Errorf("no path: %+v", res)
	}
}

func TestNextRun(t *testing.T) {
	zone := time.FixedZone("CET", 3600)
	at := func(y int, mo time.Month, d, h, m, s int) time.Time { return time.Date(y, mo, d, h, m, s, 0, zone) }
	tests := []struct {
		now      time.Time
		at       string
		interval time.Duration
		want     time.Time
		err      bool
	}{
		{now: at(2025, 6, 1, 1, 0, 0), at: "03:00", want: at(2025, 6, 1, 3, 0, 0)},
		{now: at(2025, 6, 1, 2, 59, 59), at: "03:00", want: at(2025, 6, 1, 3, 0, 0)},
		{now: at(2025, 6, 1, 3, 0, 0), at: "03:00", want: at(2025, 6, 2, 3, 0, 0)}, // strictly after
		{now: at(2025, 6, 1, 3, 0, 1), at: "03:00", want: at(2025, 6, 2, 3, 0, 0)},
		{now: at(2025, 6, 1, 23, 30, 0), at: "3:05", want: at(2025, 6, 2, 3, 5, 0)},
		{now: at(2025, 12, 31, 23, 59, 0), at: "00:00", want: at(2026, 1, 1, 0, 0, 0)},
		{now: at(2025, 2, 28, 12, 0, 0), at: "00:30", want: at(2025, 3, 1, 0, 30, 0)},
		{now: at(2025, 6, 1, 0, 0, 0), at: "23:59", want: at(2025, 6, 1, 23, 59, 0)},
		{now: at(2025, 6, 1, 1, 0, 0), at: "03:00", interval: time.Hour, want: at(2025, 6, 1, 3, 0, 0)}, // at wins
		{now: at(2025, 6, 1, 1, 0, 0), interval: 90 * time.Minute, want: at(2025, 6, 1, 2, 30, 0)},
		{now: at(2025, 6, 1, 1, 0, 0), interval: 0, err: true},
		{now: at(2025, 6, 1, 1, 0, 0), interval: -time.Hour, err: true},
		{at: "25:00", err: true},
		{at: "24:00", err: true},
		{at: "12:60", err: true},
		{at: "12", err: true},
		{at: "12:5", err: true},
		{at: "123:00", err: true},
		{at: "-1:00", err: true},
		{at: "+1:00", err: true},
		{at: "1:-5", err: true},
		{at: "ab:cd", err: true},
		{at: " 3:00", err: true},
		{at: "03:00:00", err: true},
	}
	for _, tt := range tests {
		got, err := NextRun(tt.now, tt.at, tt.interval)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("NextRun(%v, %q, %v) = %v, %v; want %v, error %v", tt.now, tt.at, tt.interval, got, err, tt.want, tt.err)
		}
	}

	// Daylight saving time: the wall-clock hour is kept.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("time zone data: %v", err) // embedded: time/tzdata is imported
	}
	for _, tt := range []struct {
		now  time.Time
		want time.Time
	}{
		// The night the clocks go forward: 02:30 does not exist; any time
		// that day after now is fine, the next one is at 02:30 again.
		{time.Date(2025, 3, 29, 4, 0, 0, 0, berlin), time.Date(2025, 3, 30, 2, 30, 0, 0, berlin)},
		{time.Date(2025, 3, 30, 4, 0, 0, 0, berlin), time.Date(2025, 3, 31, 2, 30, 0, 0, berlin)},
		{time.Date(2025, 10, 25, 4, 0, 0, 0, berlin), time.Date(2025, 10, 26, 2, 30, 0, 0, berlin)},
	} {
		got, err := NextRun(tt.now, "02:30", 0)
		if err != nil || !got.Equal(tt.want) || !got.After(tt.now) {
			t.Errorf("NextRun(%v) = %v, %v; want %v", tt.now, got, err, tt.want)
		}
	}
}

func TestRunSync(t *testing.T) {
	srv := newListServer(t, newList, `"v1"`)
	set, _ := syncSetup(t, currentList)
	cfg := SyncConfig{URLs: map[Kind]string{Reverse: srv.ts.URL + "/r"}, MaxSize: 1024, Timeout: 2 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		RunSync(ctx, srv.ts.Client(), cfg, "", 20*time.Millisecond, set, discardLog())
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for srv.count() < 2 { // an update, then a 304
		if time.Now().After(deadline) {
			t.Fatal("RunSync did not run twice")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunSync did not stop")
	}
	if !matchesIP(set.List(Reverse), "198.51.100.1") {
		t.Error("list not updated")
	}

	// A bad schedule: RunSync returns at once.
	done = make(chan struct{})
	go func() {
		RunSync(context.Background(), srv.ts.Client(), cfg, "25:00", 0, set, discardLog())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunSync with a bad time did not return")
	}
}
