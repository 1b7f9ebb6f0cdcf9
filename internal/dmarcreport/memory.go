package dmarcreport

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
)

// DayFormat is how a Period names its UTC day.
const DayFormat = "2006-01-02"

// PeriodOf is the period an evaluation belongs to.
func PeriodOf(ev Evaluation) Period {
	return Period{Domain: ev.Policy.Domain, Day: ev.Time.UTC().Format(DayFormat)}
}

// RecordKey is what makes two records one: every field but Count. It is
// the same for a record and for the record decoded from it (the bolt and
// Redis stores keep the key and hand back the decoded record for Done).
func RecordKey(r Record) string {
	r.Row.Count = 0
	b, err := json.Marshal(r)
	if err != nil { // a struct of strings and ints always marshals
		panic(err)
	}
	// json writes invalid UTF-8 as \ufffd, and the decoded U+FFFD as
	// itself: key invalid UTF-8 as its decoded form.
	if bytes.Contains(b, []byte(`\ufffd`)) {
		var valid Record
		if err := json.Unmarshal(b, &valid); err != nil {
			panic(err)
		}
		if b, err = json.Marshal(valid); err != nil {
			panic(err)
		}
	}
	return string(b)
}

// ReceivedID names an incoming report: reporters reuse report_id across
// domains and resend reports, so org, id and domain together.
func ReceivedID(fb *Feedback) string {
	return strings.ToLower(fb.Metadata.OrgName) + "\x00" + fb.Metadata.ReportID + "\x00" + strings.ToLower(fb.Policy.Domain)
}

// dayEnd is the first instant after day.
func dayEnd(day string) time.Time {
	t, err := time.Parse(DayFormat, day)
	if err != nil {
		return time.Time{}
	}
	return t.AddDate(0, 0, 1)
}

// MemoryStore is a Store in memory: for tests, and lost at exit.
type MemoryStore struct {
	mu        sync.Mutex
	now       func() time.Time
	periods   map[Period]*memPeriod
	claims    map[Period]time.Time // claim expiry
	received  map[string]Received
	malformed []Malformed // oldest first
	limits    malformedLimits
}

type memPeriod struct {
	policy PolicyPublished
	rua    []string
	keys   []string // first-seen order
	recs   map[string]Record
}

// NewMemoryStore makes an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{now: time.Now, periods: map[Period]*memPeriod{},
		claims: map[Period]time.Time{}, received: map[string]Received{}, limits: malformedLimits{}.orDefaults()}
}

func (m *MemoryStore) Add(_ context.Context, evs []Evaluation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		if !storable(ev) {
			continue
		}
		p := PeriodOf(ev)
		mp := m.periods[p]
		if mp == nil {
			mp = &memPeriod{recs: map[string]Record{}}
			m.periods[p] = mp
		}
		mp.policy, mp.rua = ev.Policy, slices.Clone(ev.RUA)
		k := RecordKey(ev.Record)
		r, ok := mp.recs[k]
		if !ok {
			mp.keys = append(mp.keys, k)
			r = ev.Record
			r.Row.Count = 0
		}
		r.Row.Count += ev.Record.Row.Count
		mp.recs[k] = r
	}
	return nil
}

func (m *MemoryStore) Unreported(_ context.Context, before time.Time) ([]Aggregate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Aggregate
	for p, mp := range m.periods {
		if dayEnd(p.Day).After(before) {
			continue
		}
		a := Aggregate{Period: p, Policy: mp.policy, RUA: slices.Clone(mp.rua)}
		for _, k := range mp.keys {
			a.Records = append(a.Records, mp.recs[k])
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Aggregate) int {
		return strings.Compare(a.Day+"\x00"+a.Domain, b.Day+"\x00"+b.Domain)
	})
	return out, nil
}

func (m *MemoryStore) Claim(_ context.Context, p Period, _ string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.claims[p].After(now) {
		return false, nil
	}
	m.claims[p] = now.Add(ttl)
	return true, nil
}

func (m *MemoryStore) Done(_ context.Context, a Aggregate) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mp := m.periods[a.Period]
	if mp == nil {
		return nil
	}
	for _, r := range a.Records {
		k := RecordKey(r)
		cur, ok := mp.recs[k]
		if !ok {
			continue
		}
		cur.Row.Count -= r.Row.Count
		if cur.Row.Count > 0 {
			mp.recs[k] = cur
			continue
		}
		delete(mp.recs, k)
		mp.keys = slices.DeleteFunc(mp.keys, func(s string) bool { return s == k })
	}
	if len(mp.recs) == 0 {
		delete(m.periods, a.Period)
	}
	return nil
}

func (m *MemoryStore) AddReceived(_ context.Context, r Received) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.received[r.ID]; ok {
		return true, nil
	}
	m.received[r.ID] = r
	return false, nil
}

func (m *MemoryStore) ListReceived(_ context.Context, domain string, since time.Time) ([]Received, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Received
	for _, r := range m.received {
		if domain != "" && !strings.EqualFold(r.Feedback.Policy.Domain, domain) {
			continue
		}
		if r.Feedback.Metadata.DateRange.End <= since.Unix() {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Received) int {
		return cmp.Or(cmp.Compare(a.Feedback.Metadata.DateRange.Begin, b.Feedback.Metadata.DateRange.Begin), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (m *MemoryStore) AddMalformed(_ context.Context, mf Malformed) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mf = m.limits.cut(mf)
	mf.Raw = slices.Clone(mf.Raw) // the caller's buffer may be reused
	m.malformed = append(m.malformed, mf)
	if over := len(m.malformed) - m.limits.max; over > 0 {
		m.malformed = slices.Delete(m.malformed, 0, over)
	}
	return nil
}

func (m *MemoryStore) ListMalformed(_ context.Context, since time.Time) ([]Malformed, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Malformed
	for _, mf := range m.malformed {
		if mf.ReceivedAt.After(since) {
			out = append(out, mf)
		}
	}
	return out, nil
}

func (m *MemoryStore) Prune(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.received {
		if r.Feedback.Metadata.DateRange.End < before.Unix() {
			delete(m.received, id)
		}
	}
	m.malformed = slices.DeleteFunc(m.malformed, func(mf Malformed) bool { return mf.ReceivedAt.Before(before) })
	now := m.now()
	for p, until := range m.claims {
		if !until.After(now) {
			delete(m.claims, p)
		}
	}
	return nil
}

func (m *MemoryStore) Close() error { return nil }

var _ Store = (*MemoryStore)(nil)
