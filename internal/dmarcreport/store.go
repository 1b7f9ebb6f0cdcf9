package dmarcreport

import (
	"context"
	"time"
)

// Evaluation is what the milter records for one inbound message whose
// From domain publishes a DMARC record with rua= (one Record of Count 1,
// plus what the report needs about the domain's policy).
type Evaluation struct {
	Time   time.Time
	Policy PolicyPublished // Policy.Domain is the domain the report is about
	RUA    []string        // the record's rua= URIs as written
	Record Record          // Row.Count is 1
}

// Period is one report: a policy domain and a UTC day ("2026-12-05").
type Period struct {
	Domain string
	Day    string
}

// Aggregate is what the store holds for a Period: the records with their
// counts summed (records equal in everything but Count are one), and the
// policy and rua= URIs last seen for the domain that day.
type Aggregate struct {
	Period
	Policy  PolicyPublished
	RUA     []string
	Records []Record
}

// Received is an aggregate report a receiver sent to one of the admin's
// rua mailboxes.
type Received struct {
	ID         string    // unique per report: org_name, report_id and domain (see ReceivedID)
	ReceivedAt time.Time // when vouch saw the message
	// MailFrom and HeaderFrom are the report message's envelope sender and
	// From address; Authenticated says its DMARC passed (a report from an
	// unauthenticated message may be forged, and list says so).
	MailFrom      string
	HeaderFrom    string
	Authenticated bool
	Feedback      Feedback
}

// Malformed is a report message that could not be read: kept (Raw cut at
// the store's limit) so that the admin can look at it, never acted on.
// Only the newest are kept: a sender of garbage cannot fill the disk.
type Malformed struct {
	ReceivedAt time.Time
	MailFrom   string
	Reason     string
	Raw        []byte
}

// Store keeps both directions' data. Implementations: memory (tests, and
// nothing configured), bbolt (one MTA), Redis (a fleet). Every method is
// safe for concurrent use, and by several processes for bbolt and Redis
// (`vouch reports` runs beside the daemon).
type Store interface {
	// Add records evaluations: each adds Count to the record of its
	// Period equal in every other field, or appends it. An evaluation
	// whose policy domain is longer than a DNS name is skipped (see
	// storable), so that it cannot fail the batch.
	Add(ctx context.Context, evs []Evaluation) error
	// Unreported lists the periods whose day ended at or before `before`
	// that hold records, oldest first.
	Unreported(ctx context.Context, before time.Time) ([]Aggregate, error)
	// Claim takes a period for sending, for ttl: false while a claim is
	// in force (another holder's, or this one's). A claim that is not
	// followed by Done expires, and the period is tried again (a
	// temporary failure). ttl must exceed a sender's whole run, from its
	// Unreported to its last Done: Done leaves the claim in force until
	// ttl, so that another process that read the period before that Done
	// cannot claim it afterwards and report the same rows again.
	Claim(ctx context.Context, p Period, holder string, ttl time.Duration) (bool, error)
	// Done says a was reported (or dropped): a's counts are subtracted from
	// its period and records that reach 0 go; the claim stays (see Claim).
	// What arrived after a was read stays for the next report, so no row is
	// lost and none is reported twice.
	Done(ctx context.Context, a Aggregate) error

	// AddReceived keeps an incoming report; a report already kept (same
	// ID) is not kept twice and dup is true.
	AddReceived(ctx context.Context, r Received) (dup bool, err error)
	// ListReceived returns the kept reports whose date range ends after
	// since, about domain ("" for every domain), oldest first.
	ListReceived(ctx context.Context, domain string, since time.Time) ([]Received, error)
	// AddMalformed keeps a report message that could not be read.
	AddMalformed(ctx context.Context, m Malformed) error
	// ListMalformed returns the malformed messages kept since since,
	// oldest first. A store keeps the newest MaxMalformed, Raw cut at
	// MaxMalformedRaw bytes.
	ListMalformed(ctx context.Context, since time.Time) ([]Malformed, error)
	// Prune drops the received reports whose date range ended before
	// before, the malformed messages received before it ([dmarc_reports]
	// keep_received), and expired claims.
	Prune(ctx context.Context, before time.Time) error

	Close() error
}

// The limits of the malformed messages a store keeps, unless StoreOptions
// say otherwise: at most 256 MiB.
const (
	DefaultMaxMalformed    = 1000
	DefaultMaxMalformedRaw = 256 << 10
)

// malformedLimits bound what a store keeps of malformed messages.
type malformedLimits struct{ max, raw int }

func (l malformedLimits) orDefaults() malformedLimits {
	if l.max <= 0 {
		l.max = DefaultMaxMalformed
	}
	if l.raw <= 0 {
		l.raw = DefaultMaxMalformedRaw
	}
	return l
}

// cut returns m with Raw cut to the limit.
func (l malformedLimits) cut(m Malformed) Malformed {
	if len(m.Raw) > l.raw {
		m.Raw = m.Raw[:l.raw:l.raw]
	}
	return m
}

// periodMeta is what a store keeps of a period besides its rows: the
// policy and rua= URIs last seen.
type periodMeta struct {
	Policy PolicyPublished
	RUA    []string
}

// periodBatch is a batch's evaluations of one period, summed per record:
// what a store adds.
type periodBatch struct {
	Period
	meta   periodMeta
	keys   []string // RecordKey, first seen first
	counts map[string]int64
}

// maxDomainLength is the longest DNS name (RFC 1035 §2.3.4, without the
// final dot).
const maxDomainLength = 253

// storable says whether a store keeps ev: no DMARC record can be found
// for a policy domain longer than a DNS name, and the bolt store could not
// key its period.
func storable(ev Evaluation) bool { return len(ev.Policy.Domain) <= maxDomainLength }

// batchByPeriod sums the storable evs per period and record, periods
// first seen first.
func batchByPeriod(evs []Evaluation) []*periodBatch {
	var out []*periodBatch
	index := map[Period]*periodBatch{}
	for _, ev := range evs {
		if !storable(ev) {
			continue
		}
		p := PeriodOf(ev)
		b := index[p]
		if b == nil {
			b = &periodBatch{Period: p, counts: map[string]int64{}}
			index[p] = b
			out = append(out, b)
		}
		b.meta = periodMeta{Policy: ev.Policy, RUA: ev.RUA}
		k := RecordKey(ev.Record)
		if _, ok := b.counts[k]; !ok {
			b.keys = append(b.keys, k)
		}
		b.counts[k] += ev.Record.Row.Count
	}
	return out
}
