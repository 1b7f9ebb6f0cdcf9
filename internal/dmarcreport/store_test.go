package dmarcreport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"vouch/internal/redisconn"
	"vouch/internal/testutil"
)

// storeKind opens a fresh, empty store of one kind with the limits of o.
type storeKind struct {
	name string
	open func(t *testing.T, o StoreOptions) Store
}

// storeKinds are the stores the conformance suite runs against: memory,
// bolt in a temporary directory, a private redis-server and a private
// Cluster of three.
func storeKinds(t *testing.T) []storeKind {
	r := testutil.StartRedis(t)
	cluster := testutil.StartRedisCluster(t)
	return []storeKind{
		{"memory", func(t *testing.T, o StoreOptions) Store {
			o.Kind = "memory"
			return openTestStore(t, o)
		}},
		{"bolt", func(t *testing.T, o StoreOptions) Store {
			o.Kind, o.Path = "bolt", filepath.Join(t.TempDir(), "reports.db")
			return openTestStore(t, o)
		}},
		{"redis", func(t *testing.T, o StoreOptions) Store {
			flushRedis(t, r)
			o.Kind, o.Redis = "redis", redisconn.Options{URL: r.URL()}
			return openTestStore(t, o)
		}},
		{"redis-cluster", func(t *testing.T, o StoreOptions) Store {
			o.Kind, o.Redis = "redis", redisconn.Options{Cluster: cluster[:1]} // the client finds the others
			s := openTestStore(t, o)
			err := s.(*redisStore).c.(*redis.ClusterClient).ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
				return c.FlushDB(ctx).Err()
			})
			noErr(t, err)
			return s
		}},
	}
}

func openTestStore(t *testing.T, o StoreOptions) Store {
	t.Helper()
	s, err := OpenStore(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func flushRedis(t *testing.T, r *testutil.Redis) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// storeEval is one message from ip about domain on day (noon UTC).
func storeEval(day, domain, ip string) Evaluation {
	tm, err := time.Parse(DayFormat, day)
	if err != nil {
		panic(err)
	}
	return Evaluation{
		Time:   tm.Add(12 * time.Hour),
		Policy: PolicyPublished{Domain: domain, P: "reject", Pct: 100},
		RUA:    []string{"mailto:dmarc@" + domain},
		Record: Record{
			Row:         Row{SourceIP: ip, Count: 1, PolicyEvaluated: PolicyEvaluated{Disposition: "none", DKIM: "pass", SPF: "fail"}},
			Identifiers: Identifiers{HeaderFrom: domain, EnvelopeFrom: domain},
			AuthResults: AuthResults{
				DKIM: []DKIMAuthResult{{Domain: domain, Selector: "s1", Result: "pass"}},
				SPF:  []SPFAuthResult{{Domain: domain, Scope: "mfrom", Result: "fail"}},
			},
		},
	}
}

// storeCounts sums an aggregate's rows by source IP.
func storeCounts(a Aggregate) map[string]int64 {
	m := map[string]int64{}
	for _, r := range a.Records {
		m[r.Row.SourceIP] += r.Row.Count
	}
	return m
}

func storeReceived(org, id, domain string, begin int64) Received {
	return Received{
		ID:         ReceivedID(&Feedback{Metadata: ReportMetadata{OrgName: org, ReportID: id}, Policy: PolicyPublished{Domain: domain}}),
		ReceivedAt: time.Unix(begin+86400+3600, 0).UTC(),
		MailFrom:   "noreply@" + org,
		Feedback: Feedback{
			Metadata: ReportMetadata{OrgName: org, ReportID: id, DateRange: DateRange{Begin: begin, End: begin + 86399}},
			Policy:   PolicyPublished{Domain: domain, P: "none"},
			Records:  []Record{storeEval("2026-12-01", domain, "192.0.2.1").Record},
		},
	}
}

// dayEndOf is the end of a day in DayFormat.
func dayEndOf(day string) time.Time { return dayEnd(day) }

var storeCases = []struct {
	name string
	o    StoreOptions
	run  func(t *testing.T, s Store)
}{
	{"empty", StoreOptions{}, func(t *testing.T, s Store) {
		ctx := context.Background()
		aggs, err := s.Unreported(ctx, time.Now())
		noErr(t, err)
		rs, err := s.ListReceived(ctx, "", time.Time{})
		noErr(t, err)
		ms, err := s.ListMalformed(ctx, time.Time{})
		noErr(t, err)
		if len(aggs)+len(rs)+len(ms) != 0 {
			t.Errorf("empty store lists %v %v %v", aggs, rs, ms)
		}
		noErr(t, s.Done(ctx, Aggregate{Period: Period{Domain: "example.com", Day: "2026-12-01"}}))
		noErr(t, s.Prune(ctx, time.Now()))
	}},
	{"add sums equal records and keeps distinct ones", StoreOptions{}, func(t *testing.T, s Store) {
		ctx := context.Background()
		a, b := storeEval("2026-12-01", "example.com", "192.0.2.1"), storeEval("2026-12-01", "example.com", "192.0.2.2")
		later := a
		later.Policy.P, later.RUA = "quarantine", []string{"mailto:new@example.com"}
		noErr(t, s.Add(ctx, []Evaluation{a, b, a}))
		noErr(t, s.Add(ctx, []Evaluation{later}))
		aggs, err := s.Unreported(ctx, dayEndOf("2026-12-01"))
		noErr(t, err)
		if len(aggs) != 1 {
			t.Fatalf("got %d aggregates, want 1: %+v", len(aggs), aggs)
		}
		if got, want := storeCounts(aggs[0]), map[string]int64{"192.0.2.1": 3, "192.0.2.2": 1}; !reflect.DeepEqual(got, want) {
			t.Errorf("counts %v, want %v", got, want)
		}
		if len(aggs[0].Records) != 2 {
			t.Errorf("records %+v, want 2", aggs[0].Records)
		}
		if aggs[0].Policy.P != "quarantine" || !slices.Equal(aggs[0].RUA, later.RUA) {
			t.Errorf("policy %+v rua %v, want the last seen", aggs[0].Policy, aggs[0].RUA)
		}
		want := a.Record
		want.Row.Count = 3
		if i := slices.IndexFunc(aggs[0].Records, func(r Record) bool { return r.Row.SourceIP == "192.0.2.1" }); !reflect.DeepEqual(aggs[0].Records[i], want) {
			t.Errorf("record %+v, want %+v", aggs[0].Records[i], want)
		}
	}},
	{"unreported lists ended days oldest first", StoreOptions{}, func(t *testing.T, s Store) {
		ctx := context.Background()
		noErr(t, s.Add(ctx, []Evaluation{
			storeEval("2026-12-03", "a.example", "192.0.2.1"),
			storeEval("2026-12-02", "b.example", "192.0.2.1"),
			storeEval("2026-12-01", "b.example", "192.0.2.1"),
			storeEval("2026-12-02", "a.example", "192.0.2.1"),
		}))
		for _, tc := range []struct {
			before time.Time
			want   []Period
		}{
			{dayEndOf("2026-12-01").Add(-time.Second), nil},
			{dayEndOf("2026-12-01"), []Period{{"b.example", "2026-12-01"}}},
			{dayEndOf("2026-12-02").Add(time.Hour), []Period{{"b.example", "2026-12-01"}, {"a.example", "2026-12-02"}, {"b.example", "2026-12-02"}}},
			{dayEndOf("2026-12-03"), []Period{{"b.example", "2026-12-01"}, {"a.example", "2026-12-02"}, {"b.example", "2026-12-02"}, {"a.example", "2026-12-03"}}},
		} {
			aggs, err := s.Unreported(ctx, tc.before)
			noErr(t, err)
			var got []Period
			for _, a := range aggs {
				got = append(got, a.Period)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("before %v: %v, want %v", tc.before, got, tc.want)
			}
		}
	}},
	{"claim excludes a second holder until ttl passes", StoreOptions{}, func(t *testing.T, s Store) {
		ctx := context.Background()
		noErr(t, s.Add(ctx, []Evaluation{storeEval("2026-12-01", "example.com", "192.0.2.1")}))
		p := Period{Domain: "example.com", Day: "2026-12-01"}
		const ttl = 300 * time.Millisecond
		claim := func(holder string, want bool) {
			t.Helper()
			ok, err := s.Claim(ctx, p, holder, ttl)
			noErr(t, err)
			if ok != want {
				t.Errorf("%s: claim %v, want %v", holder, ok, want)
			}
		}
		claim("a", true)
		claim("b", false)
		claim("a", false)
		aggs, err := s.Unreported(ctx, dayEndOf(p.Day))
		noErr(t, err)
		noErr(t, s.Done(ctx, aggs[0]))
		// b read the period before a's Done: it must not report it again.
		claim("b", false)
		time.Sleep(ttl + 100*time.Millisecond)
		claim("b", true)
		noErr(t, s.Prune(ctx, time.Now())) // drops expired claims only
		claim("a", false)
		other := Period{Domain: "example.org", Day: "2026-12-01"}
		if ok, err := s.Claim(ctx, other, "b", ttl); err != nil || !ok {
			t.Errorf("claim of another period: %v %v", ok, err)
		}
	}},
	{"done subtracts and keeps rows added after the read", StoreOptions{}, func(t *testing.T, s Store) {
		ctx := context.Background()
		a, b := storeEval("2026-12-01", "example.com", "192.0.2.1"), storeEval("2026-12-01", "example.com", "192.0.2.2")
		noErr(t, s.Add(ctx, []Evaluation{a, a}))
		before := dayEndOf("2026-12-01")
		aggs, err := s.Unreported(ctx, before)
		noErr(t, err)
		noErr(t, s.Add(ctx, []Evaluation{a, b})) // while the report is sent
		noErr(t, s.Done(ctx, aggs[0]))
		aggs2, err := s.Unreported(ctx, before)
		noErr(t, err)
		if len(aggs2) != 1 {
			t.Fatalf("after Done: %+v, want the rows added meanwhile", aggs2)
		}
		if got, want := storeCounts(aggs2[0]), map[string]int64{"192.0.2.1": 1, "192.0.2.2": 1}; !reflect.DeepEqual(got, want) {
			t.Errorf("after Done: counts %v, want %v", got, want)
		}
		noErr(t, s.Done(ctx, aggs2[0]))
		aggs3, err := s.Unreported(ctx, before)
		noErr(t, err)
		if len(aggs3) != 0 {
			t.Errorf("after the second Done: %+v, want nothing", aggs3)
		}
		// The emptied period is gone, and a new row starts it afresh.
		noErr(t, s.Add(ctx, []Evaluation{b}))
		aggs4, err := s.Unreported(ctx, before)
		noErr(t, err)
		if len(aggs4) != 1 || !reflect.DeepEqual(storeCounts(aggs4[0]), map[string]int64{"192.0.2.2": 1}) {
			t.Errorf("after a new Add: %+v", aggs4)
		}
	}},
	{"done removes rows with invalid UTF-8", StoreOptions{}, func(t *testing.T, s Store) {
		ctx := context.Background()
		ev := storeEval("2026-12-01", "example.com", "192.0.2.1")
		ev.Record.Identifiers.EnvelopeFrom = "b\xffunce.example.com" // 8-bit MAIL FROM
		noErr(t, s.Add(ctx, []Evaluation{ev}))
		aggs, err := s.Unreported(ctx, dayEndOf("2026-12-01"))
		noErr(t, err)
		noErr(t, s.Done(ctx, aggs[0]))
		if aggs, err = s.Unreported(ctx, dayEndOf("2026-12-01")); err != nil || len(aggs) != 0 {
			t.Errorf("after Done: %+v %v, want nothing (reported again every day)", aggs, err)
		}
	}},
	{"add received dedups by ID", StoreOptions{}, func(t *testing.T, s Store) {
		ctx := context.Background()
		r := storeReceived("google.com", "1", "example.com", 1764547200)
		dup, err := s.AddReceived(ctx, r)
		noErr(t, err)
		again := r
		again.MailFrom = "other@google.com"
		dup2, err := s.AddReceived(ctx, again)
		noErr(t, err)
		if dup || !dup2 {
			t.Errorf("dup %v then %v, want false then true", dup, dup2)
		}
		rs, err := s.ListReceived(ctx, "", time.Time{})
		noErr(t, err)
		if len(rs) != 1 || !reflect.DeepEqual(rs[0], r) {
			t.Errorf("kept %+v, want only the first %+v", rs, r)
		}
	}},
	{"list received filters by domain and since", StoreOptions{}, func(t *testing.T, s Store) {
		ctx := context.Background()
		const day = 86400
		t0 := int64(1764547200)
		rs := []Received{
			storeReceived("yahoo.com", "9", "EXAMPLE.com", t0+2*day),
			storeReceived("google.com", "1", "example.com", t0),
			storeReceived("google.com", "1", "example.org", t0+day), // same report ID, other domain
			storeReceived("microsoft.com", "x", "example.com", t0+day),
		}
		for _, r := range rs {
			dup, err := s.AddReceived(ctx, r)
			noErr(t, err)
			if dup {
				t.Errorf("%q: dup", r.ID)
			}
		}
		ids := func(domain string, since time.Time) []string {
			got, err := s.ListReceived(ctx, domain, since)
			noErr(t, err)
			var out []string
			for _, r := range got {
				out = append(out, r.Feedback.Metadata.OrgName)
			}
			return out
		}
		for _, tc := range []struct {
			domain string
			since  time.Time
			want   []string
		}{
			{"", time.Time{}, []string{"google.com", "google.com", "microsoft.com", "yahoo.com"}},
			{"example.com", time.Time{}, []string{"google.com", "microsoft.com", "yahoo.com"}},
			{"Example.ORG", time.Time{}, []string{"google.com"}},
			{"example.net", time.Time{}, nil},
			// since: the date range must end after it.
			{"example.com", time.Unix(t0+day-1, 0), []string{"microsoft.com", "yahoo.com"}},
			{"example.com", time.Unix(t0+day-2, 0), []string{"google.com", "microsoft.com", "yahoo.com"}},
			{"", time.Unix(t0+3*day, 0), nil},
		} {
			if got := ids(tc.domain, tc.since); !slices.Equal(got, tc.want) {
				t.Errorf("ListReceived(%q, %v) = %v, want %v", tc.domain, tc.since.Unix(), got, tc.want)
			}
		}
	}},
	{"malformed is bounded", StoreOptions{MaxMalformed: 3, MaxMalformedRaw: 10}, func(t *testing.T, s Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		for i := range 5 {
			raw := []byte(strings.Repeat(fmt.Sprint(i), 5+i*3))
			noErr(t, s.AddMalformed(ctx, Malformed{ReceivedAt: t0.Add(time.Duration(i) * time.Minute), MailFrom: fmt.Sprint(i), Reason: "broken gzip", Raw: raw}))
		}
		ms, err := s.ListMalformed(ctx, time.Time{})
		noErr(t, err)
		var got []string
		for _, m := range ms {
			got = append(got, m.MailFrom+":"+string(m.Raw))
		}
		// The oldest two went; 2, 3 and 4 had 11, 14 and 17 bytes.
		if want := []string{"2:2222222222", "3:3333333333", "4:4444444444"}; !slices.Equal(got, want) {
			t.Errorf("kept %q, want %q", got, want)
		}
		ms, err = s.ListMalformed(ctx, t0.Add(3*time.Minute))
		noErr(t, err)
		if len(ms) != 1 || ms[0].MailFrom != "4" {
			t.Errorf("since the 4th minute: %+v, want the last", ms)
		}
	}},
	{"prune drops old received and malformed", StoreOptions{}, func(t *testing.T, s Store) {
		ctx := context.Background()
		t0 := int64(1764547200)
		old, recent := storeReceived("google.com", "1", "example.com", t0), storeReceived("google.com", "2", "example.com", t0+86400)
		for _, r := range []Received{old, recent} {
			_, err := s.AddReceived(ctx, r)
			noErr(t, err)
		}
		for _, at := range []time.Time{time.Unix(t0, 0), time.Unix(t0+86400, 0)} {
			noErr(t, s.AddMalformed(ctx, Malformed{ReceivedAt: at.UTC(), Reason: "no XML", Raw: []byte("x")}))
		}
		cut := time.Unix(t0+86400, 0) // after old's end, at recent's start
		noErr(t, s.Prune(ctx, cut))
		rs, err := s.ListReceived(ctx, "", time.Time{})
		noErr(t, err)
		if len(rs) != 1 || rs[0].ID != recent.ID {
			t.Errorf("after Prune: %+v, want only the recent report", rs)
		}
		ms, err := s.ListMalformed(ctx, time.Time{})
		noErr(t, err)
		if len(ms) != 1 || !ms[0].ReceivedAt.Equal(cut) {
			t.Errorf("after Prune: %+v, want only the recent malformed message", ms)
		}
		// The pruned ID may come again (a resent report): it is new.
		dup, err := s.AddReceived(ctx, old)
		noErr(t, err)
		if dup {
			t.Error("a pruned report counts as a duplicate")
		}
	}},
}

// testCommand runs this test binary's test named run, with env added.
func testCommand(t *testing.T, run string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

func fileOwner(st os.FileInfo) (uid, gid uint32) {
	sys := st.Sys().(*syscall.Stat_t)
	return sys.Uid, sys.Gid
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStoreConformance runs the same cases against every store.
func TestStoreConformance(t *testing.T) {
	for _, k := range storeKinds(t) {
		t.Run(k.name, func(t *testing.T) {
			for _, tc := range storeCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, k.open(t, tc.o)) })
			}
		})
	}
}

func TestOpenStoreErrors(t *testing.T) {
	for _, tc := range []struct {
		o    StoreOptions
		want string
	}{
		{StoreOptions{Kind: "sqlite"}, `unknown store "sqlite"`},
		{StoreOptions{Kind: "bolt"}, "no path"},
		{StoreOptions{Kind: "redis", Redis: redisconn.Options{URL: "http://x"}}, "dmarc_reports.redis_url"},
	} {
		_, err := OpenStore(tc.o)
		testutil.ErrorMentions(t, err, tc.want)
	}
}

// TestBoltReadCreatesNothing: `vouch reports list` (or send) before the
// daemon ever wrote, perhaps as root, leaves no file behind; the first
// write creates it 0600.
func TestBoltReadCreatesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "reports.db")
	s := openTestStore(t, StoreOptions{Kind: "bolt", Path: path})
	p := Period{Domain: "example.com", Day: "2026-12-01"}
	if _, err := s.Unreported(ctx, time.Now()); err != nil {
		t.Error(err)
	}
	if _, err := s.ListReceived(ctx, "", time.Time{}); err != nil {
		t.Error(err)
	}
	if _, err := s.ListMalformed(ctx, time.Time{}); err != nil {
		t.Error(err)
	}
	if _, err := s.Claim(ctx, p, "cli", time.Minute); err != nil {
		t.Error(err)
	}
	noErr(t, s.Done(ctx, Aggregate{Period: p}))
	noErr(t, s.Prune(ctx, time.Now()))
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a read made the file: %v", err)
	}
	// An empty file (its creator has not initialised it yet) reads as
	// empty too.
	noErr(t, os.WriteFile(path, nil, 0o600))
	if _, err := s.ListReceived(ctx, "", time.Time{}); err != nil {
		t.Errorf("empty file: %v", err)
	}
	noErr(t, os.Remove(path))

	noErr(t, s.Add(ctx, []Evaluation{storeEval("2026-12-01", "example.com", "192.0.2.1")}))
	st, err := os.Stat(path)
	noErr(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

// TestBoltKeepsOwner: `vouch reports send` run as root changes the file
// but not its owner, so the daemon can still open it.
func TestBoltKeepsOwner(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "reports.db")
	s := openTestStore(t, StoreOptions{Kind: "bolt", Path: path})
	noErr(t, s.Add(ctx, []Evaluation{storeEval("2026-12-01", "example.com", "192.0.2.1")}))
	noErr(t, os.Chown(path, 65534, 65534))
	aggs, err := s.Unreported(ctx, time.Now())
	noErr(t, err)
	if ok, err := s.Claim(ctx, aggs[0].Period, "root", time.Minute); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	noErr(t, s.Done(ctx, aggs[0]))
	noErr(t, s.Prune(ctx, time.Now()))
	st, err := os.Stat(path)
	noErr(t, err)
	if uid, gid := fileOwner(st); uid != 65534 || gid != 65534 {
		t.Errorf("owner %d:%d, want 65534:65534", uid, gid)
	}
}

// TestBoltLockTimeout: a file held by another process for longer than
// LockTimeout, or the caller's deadline, gives an error naming the file.
func TestBoltLockTimeout(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "reports.db")
	s := openTestStore(t, StoreOptions{Kind: "bolt", Path: path, LockTimeout: 200 * time.Millisecond})
	noErr(t, s.Add(ctx, []Evaluation{storeEval("2026-12-01", "example.com", "192.0.2.1")}))
	db, err := bolt.Open(path, 0o600, nil) // a read-write handle: an exclusive lock
	noErr(t, err)
	defer db.Close()
	_, err = s.ListReceived(ctx, "", time.Time{})
	testutil.ErrorMentions(t, err, path, "locked by another process")

	// A shorter deadline of the caller wins over LockTimeout.
	s = openTestStore(t, StoreOptions{Kind: "bolt", Path: path, LockTimeout: time.Minute})
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Add(short, []Evaluation{storeEval("2026-12-01", "example.com", "192.0.2.1")})
	testutil.ErrorMentions(t, err, path, "locked by another process")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waited %v with a deadline of 100ms", d)
	}
}

// boltWriterEnv names the file that TestBoltWriterProcess writes to when
// the test binary runs as the writer of TestBoltReaderBesideWriter.
const boltWriterEnv = "VOUCH_TEST_BOLT_WRITER"

// TestBoltWriterProcess is the daemon of TestBoltReaderBesideWriter: in a
// process of its own, it adds reports and rows for a second, every 20ms.
func TestBoltWriterProcess(t *testing.T) {
	path := os.Getenv(boltWriterEnv)
	if path == "" {
		return // only as TestBoltReaderBesideWriter's child
	}
	ctx := context.Background()
	s := openTestStore(t, StoreOptions{Kind: "bolt", Path: path})
	stop := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(stop); i++ {
		_, err := s.AddReceived(ctx, storeReceived("google.com", fmt.Sprint(i), "example.com", 1764547200))
		noErr(t, err)
		noErr(t, s.Add(ctx, []Evaluation{storeEval("2026-12-01", "example.com", "192.0.2.1")}))
		time.Sleep(20 * time.Millisecond) // the recorder writes a few batches a second
	}
}

// TestBoltReaderBesideWriter: `vouch reports list` reads the file while
// the daemon, another process, keeps writing to it.
func TestBoltReaderBesideWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "reports.db")
	var out bytes.Buffer
	cmd := testCommand(t, "TestBoltWriterProcess", boltWriterEnv+"="+path)
	cmd.Stdout, cmd.Stderr = &out, &out
	noErr(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	s := openTestStore(t, StoreOptions{Kind: "bolt", Path: path})
	var reads, seen []int
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("writer: %v\n%s", err, out.String())
			}
			running = false
		default:
		}
		rs, err := s.ListReceived(ctx, "", time.Time{})
		if err != nil {
			t.Fatalf("read beside the writer: %v", err)
		}
		reads = append(reads, len(rs))
		if len(rs) > 0 && (len(seen) == 0 || seen[len(seen)-1] != len(rs)) {
			seen = append(seen, len(rs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d reads, distinct counts seen: %v", len(reads), seen)
	// The reads saw the file grow: they ran between the writes, not after.
	if len(seen) < 3 || !slices.IsSorted(seen) {
		t.Errorf("reads saw counts %v: want at least 3, growing", seen)
	}
	aggs, err := s.Unreported(ctx, dayEndOf("2026-12-01"))
	noErr(t, err)
	if len(aggs) != 1 || storeCounts(aggs[0])["192.0.2.1"] != int64(reads[len(reads)-1]) {
		t.Errorf("rows %+v, want one per report (%d)", aggs, reads[len(reads)-1])
	}
}

// TestRedisClaimRace: a fleet sharing Redis sends one report per period:
// of several instances claiming at once, one wins, and after its Done the
// period is gone for all.
func TestRedisClaimRace(t *testing.T) {
	ctx := context.Background()
	r := testutil.StartRedis(t)
	var stores []Store
	for range 2 {
		stores = append(stores, openTestStore(t, StoreOptions{Kind: "redis", Redis: redisconn.Options{URL: r.URL()}}))
	}
	noErr(t, stores[0].Add(ctx, []Evaluation{storeEval("2026-12-01", "example.com", "192.0.2.1")}))
	noErr(t, stores[1].Add(ctx, []Evaluation{storeEval("2026-12-01", "example.com", "192.0.2.1")}))
	// Every instance reads the period, then all claim at once.
	var mu sync.Mutex
	var winners []string
	var wg, read sync.WaitGroup
	const n = 20
	read.Add(n)
	for i := range n {
		wg.Go(func() {
			s := stores[i%2]
			aggs, err := s.Unreported(ctx, dayEndOf("2026-12-01"))
			read.Done()
			if err != nil || len(aggs) != 1 {
				t.Errorf("instance %d: %v %v", i, aggs, err)
				return
			}
			read.Wait()
			ok, err := s.Claim(ctx, aggs[0].Period, fmt.Sprint("mx", i), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winners = append(winners, fmt.Sprint("mx", i))
				mu.Unlock()
				if err := s.Done(ctx, aggs[0]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Errorf("claims won by %v, want exactly one", winners)
	}
	for i, s := range stores {
		aggs, err := s.Unreported(ctx, dayEndOf("2026-12-01"))
		noErr(t, err)
		if len(aggs) != 0 {
			t.Errorf("instance %d still sees %+v after Done", i, aggs)
		}
	}
}

// BenchmarkStoreAdd adds a batch of 1 and of 1000 evaluations (100
// sources of 10 messages, 2 domains), as the recorder does.
func BenchmarkStoreAdd(b *testing.B) {
	var evs []Evaluation
	for i := range 1000 {
		evs = append(evs, storeEval("2026-12-01", fmt.Sprintf("d%d.example", i%2), fmt.Sprintf("192.0.2.%d", i%100)))
	}
	r := testutil.StartRedis(b)
	for _, k := range []struct {
		name string
		o    StoreOptions
	}{
		{"memory", StoreOptions{Kind: "memory"}},
		{"bolt", StoreOptions{Kind: "bolt", Path: filepath.Join(b.TempDir(), "reports.db")}},
		{"redis", StoreOptions{Kind: "redis", Redis: redisconn.Options{URL: r.URL()}}},
	} {
		s, err := OpenStore(k.o)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for _, n := range []int{1, 1000} {
			b.Run(fmt.Sprintf("%s/%d", k.name, n), func(b *testing.B) {
				for b.Loop() {
					if err := s.Add(context.Background(), evs[:n]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// FuzzStoreAgreement: whatever strings a message brings (the sender's to
// choose: invalid UTF-8, NULs, braces, long names), the bolt store keeps
// the same rows as the reference MemoryStore, and Done of what it listed
// empties it.
func FuzzStoreAgreement(f *testing.F) {
	f.Add("192.0.2.1", "example.com", "bounce.example.com", "s1", int64(1))
	f.Add("2001:db8::1", "{tag}.example", "a\x00b", "", int64(7))
	f.Add("", "\xff\xfe", "x\xc3", "sel\"ector", int64(-3))
	f.Add("192.0.2.1", strings.Repeat("d", 40000), "", "s", int64(1<<40))
	f.Fuzz(func(t *testing.T, ip, domain, envFrom, selector string, count int64) {
		ctx := context.Background()
		ev := storeEval("2026-12-01", domain, ip)
		ev.Record.Row.Count = count
		ev.Record.Identifiers.EnvelopeFrom = envFrom
		ev.Record.AuthResults.DKIM[0].Selector = selector
		evs := []Evaluation{ev, storeEval("2026-12-01", "example.org", "192.0.2.9"), ev}

		mem := NewMemoryStore()
		bs := openTestStore(t, StoreOptions{Kind: "bolt", Path: filepath.Join(t.TempDir(), "r.db")})
		noErr(t, mem.Add(ctx, evs))
		noErr(t, bs.Add(ctx, evs))
		before := dayEndOf("2026-12-01")
		want, err := mem.Unreported(ctx, before)
		noErr(t, err)
		got, err := bs.Unreported(ctx, before)
		noErr(t, err)
		// Both through JSON, as the bolt store keeps them (invalid UTF-8
		// becomes U+FFFD), records in RecordKey order.
		if a, b := storeNormal(t, want), storeNormal(t, got); a != b {
			t.Fatalf("bolt store:\n%s\nmemory store:\n%s", b, a)
		}
		for _, a := range got {
			noErr(t, bs.Done(ctx, a))
		}
		if left, err := bs.Unreported(ctx, before); err != nil || len(left) != 0 {
			t.Fatalf("after Done: %+v %v", left, err)
		}
	})
}

func storeNormal(t *testing.T, aggs []Aggregate) string {
	for _, a := range aggs {
		sortRecords(a.Records)
	}
	js, err := json.Marshal(aggs)
	noErr(t, err)
	// Once more: invalid UTF-8 is written as \ufffd, U+FFFD as itself.
	var again []Aggregate
	noErr(t, json.Unmarshal(js, &again))
	js, err = json.MarshalIndent(again, "", " ")
	noErr(t, err)
	return string(js)
}
