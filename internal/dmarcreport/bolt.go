package dmarcreport

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltStore keeps everything in one bbolt file, for one MTA. Why bbolt
// (go.etcd.io/bbolt, etcd's fork of BoltDB): pure Go (no cgo, unlike
// SQLite's usual driver), one file the admin can back up or delete,
// ACID transactions with fsync, no background compaction or goroutines
// (Badger, Pebble), and kept up by the etcd maintainers.
//
// bbolt holds an exclusive lock on the file for as long as a read-write
// handle is open, so the store opens the file for each operation (one
// transaction, then close): the daemon records and `vouch reports` reads
// and sends at the same time, each waiting at most lockTimeout for the
// other's transaction. The daemon's recorder batches its Adds, so that is
// a few opens a second at most.
//
// Reads (Unreported, ListReceived, ListMalformed) open the file read-only
// and find nothing in a missing file; Claim, Done and Prune change
// nothing in a missing one. Only the daemon's Adds create it (0600), so a
// `vouch reports` run as root never leaves a file the daemon cannot open.
//
// Buckets (pk = "DAY\x00DOMAIN", so a cursor walks the periods oldest
// first):
//
//	periods         pk → JSON periodMeta (policy and rua= of the period)
//	rows            pk → bucket: sha256(RecordKey) → count (8 bytes) + RecordKey
//	claims          pk → JSON boltClaim (Prune drops the expired ones)
//	received        ID → JSON Received
//	received_by_end end (8 bytes) + ID → nothing, for ListReceived and Prune
//	malformed       ReceivedAt (8 bytes, ns) + sequence (8) → JSON Malformed, the newest limits.max
//
// The rows are keyed by a hash of RecordKey since a bbolt key has at most
// 32 KiB and a record (DKIM results and all) is the sender's to make long.
type boltStore struct {
	path    string
	timeout time.Duration
	limits  malformedLimits
	// mu keeps this process's operations from polling for each other's
	// file lock.
	mu sync.Mutex
}

var (
	bucketPeriods       = []byte("periods")
	bucketRows          = []byte("rows")
	bucketClaims        = []byte("claims")
	bucketReceived      = []byte("received")
	bucketReceivedByEnd = []byte("received_by_end")
	bucketMalformed     = []byte("malformed")
)

type boltClaim struct {
	Holder string
	Until  time.Time
}

// DefaultLockTimeout is how long a bolt store operation waits for the
// file lock that another process holds.
const DefaultLockTimeout = 5 * time.Second

func newBoltStore(path string, timeout time.Duration, limits malformedLimits) (*boltStore, error) {
	if path == "" {
		return nil, errors.New("dmarc report store: no path for the bolt file")
	}
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	return &boltStore{path: path, timeout: timeout, limits: limits.orDefaults()}, nil
}

// access says how an operation uses the file.
type access int

const (
	read   access = iota // read-only; a missing file is empty
	change               // read-write; a missing file is left missing
	create               // read-write; a missing file is created
)

// do runs fn in one transaction on the file opened for a. For read and
// change, a missing (or not yet initialised, empty) file skips fn. It
// waits for the file lock until lockTimeout or ctx's deadline.
func (s *boltStore) do(ctx context.Context, a access, fn func(tx *bolt.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return s.wrap(err)
	}
	timeout := s.timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(d)), time.Millisecond) // 0 would wait for ever
	}
	if a != create {
		// An empty file is one whose creator has not initialised it yet:
		// a read-only open would fail on it.
		st, err := os.Stat(s.path)
		if errors.Is(err, fs.ErrNotExist) || err == nil && st.Size() == 0 {
			return nil
		}
		if err != nil {
			return s.wrap(err)
		}
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: a == read})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("dmarc report store %s: still locked by another process after %v", s.path, timeout)
	}
	if err != nil {
		return s.wrap(err)
	}
	if a == read {
		err = db.View(fn)
	} else {
		err = db.Update(fn)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return s.wrap(err)
}

func (s *boltStore) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("dmarc report store %s: %w", s.path, err)
}

// periodKey sorts by day, then domain.
func periodKey(p Period) []byte { return []byte(p.Day + "\x00" + p.Domain) }

func periodOfKey(k []byte) Period {
	day, domain, _ := strings.Cut(string(k), "\x00")
	return Period{Domain: domain, Day: day}
}

func rowKey(recordKey string) []byte {
	h := sha256.Sum256([]byte(recordKey))
	return h[:]
}

// sortable encodes n so that byte order is number order (a date-range end
// in a hostile report may be negative).
func sortable(n int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(n)^(1<<63))
}

func (s *boltStore) Add(ctx context.Context, evs []Evaluation) error {
	if len(evs) == 0 {
		return nil
	}
	return s.do(ctx, create, func(tx *bolt.Tx) error {
		periods, err := tx.CreateBucketIfNotExists(bucketPeriods)
		if err != nil {
			return err
		}
		rows, err := tx.CreateBucketIfNotExists(bucketRows)
		if err != nil {
			return err
		}
		for _, b := range batchByPeriod(evs) {
			pk := periodKey(b.Period)
			meta, err := json.Marshal(b.meta)
			if err != nil {
				return err
			}
			if err := periods.Put(pk, meta); err != nil {
				return err
			}
			pr, err := rows.CreateBucketIfNotExists(pk)
			if err != nil {
				return err
			}
			for _, rk := range b.keys {
				k := rowKey(rk)
				n := b.counts[rk]
				if v := pr.Get(k); len(v) >= 8 {
					n += int64(binary.BigEndian.Uint64(v))
				}
				if err := pr.Put(k, append(binary.BigEndian.AppendUint64(nil, uint64(n)), rk...)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (s *boltStore) Unreported(ctx context.Context, before time.Time) ([]Aggregate, error) {
	var out []Aggregate
	err := s.do(ctx, read, func(tx *bolt.Tx) error {
		periods, rows := tx.Bucket(bucketPeriods), tx.Bucket(bucketRows)
		if periods == nil || rows == nil {
			return nil
		}
		c := periods.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			p := periodOfKey(k)
			if dayEnd(p.Day).After(before) {
				break // the keys that follow are later days
			}
			var meta periodMeta
			if err := json.Unmarshal(v, &meta); err != nil {
				return fmt.Errorf("period %s %s: %w", p.Domain, p.Day, err)
			}
			a := Aggregate{Period: p, Policy: meta.Policy, RUA: meta.RUA}
			b := rows.Bucket(k)
			if b == nil {
				continue
			}
			err := b.ForEach(func(_, v []byte) error {
				r, err := decodeRow(v)
				a.Records = append(a.Records, r)
				return err
			})
			if err != nil {
				return fmt.Errorf("period %s %s: %w", p.Domain, p.Day, err)
			}
			if len(a.Records) > 0 {
				sortRecords(a.Records)
				out = append(out, a)
			}
		}
		return nil
	})
	return out, err
}

// decodeRow reads a row value: the count, then RecordKey.
func decodeRow(v []byte) (Record, error) {
	var r Record
	if len(v) < 8 {
		return r, errors.New("short row")
	}
	if err := json.Unmarshal(v[8:], &r); err != nil {
		return r, err
	}
	r.Row.Count = int64(binary.BigEndian.Uint64(v))
	return r, nil
}

// sortRecords puts records in RecordKey order (by source IP first), so
// that a report does not depend on the store's order.
func sortRecords(recs []Record) {
	type keyed struct {
		k string
		r Record
	}
	ks := make([]keyed, len(recs))
	for i, r := range recs {
		ks[i] = keyed{RecordKey(r), r}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.k, b.k) })
	for i := range ks {
		recs[i] = ks[i].r
	}
}

func (s *boltStore) Claim(ctx context.Context, p Period, holder string, ttl time.Duration) (bool, error) {
	ok := true // a missing file has nothing to claim
	err := s.do(ctx, change, func(tx *bolt.Tx) error {
		claims, err := tx.CreateBucketIfNotExists(bucketClaims)
		if err != nil {
			return err
		}
		pk := periodKey(p)
		now := time.Now()
		var cur boltClaim
		if v := claims.Get(pk); v != nil && json.Unmarshal(v, &cur) == nil && cur.Until.After(now) {
			ok = false
			return nil
		}
		v, err := json.Marshal(boltClaim{Holder: holder, Until: now.Add(ttl)})
		if err != nil {
			return err
		}
		return claims.Put(pk, v)
	})
	return ok && err == nil, err
}

func (s *boltStore) Done(ctx context.Context, a Aggregate) error {
	return s.do(ctx, change, func(tx *bolt.Tx) error {
		pk := periodKey(a.Period)
		rows := tx.Bucket(bucketRows)
		if rows == nil {
			return nil
		}
		b := rows.Bucket(pk)
		if b == nil {
			return nil
		}
		for _, r := range a.Records {
			k := rowKey(RecordKey(r))
			v := b.Get(k)
			if len(v) < 8 {
				continue
			}
			n := int64(binary.BigEndian.Uint64(v)) - r.Row.Count
			var err error
			if n > 0 {
				v = append(binary.BigEndian.AppendUint64(nil, uint64(n)), v[8:]...)
				err = b.Put(k, v)
			} else {
				err = b.Delete(k)
			}
			if err != nil {
				return err
			}
		}
		if k, _ := b.Cursor().First(); k != nil {
			return nil
		}
		if err := rows.DeleteBucket(pk); err != nil {
			return err
		}
		if periods := tx.Bucket(bucketPeriods); periods != nil {
			return periods.Delete(pk)
		}
		return nil
	})
}

func (s *boltStore) AddReceived(ctx context.Context, r Received) (bool, error) {
	v, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	dup := false
	err = s.do(ctx, create, func(tx *bolt.Tx) error {
		received, err := tx.CreateBucketIfNotExists(bucketReceived)
		if err != nil {
			return err
		}
		byEnd, err := tx.CreateBucketIfNotExists(bucketReceivedByEnd)
		if err != nil {
			return err
		}
		if received.Get([]byte(r.ID)) != nil {
			dup = true
			return nil
		}
		if err := received.Put([]byte(r.ID), v); err != nil {
			return err
		}
		return byEnd.Put(append(sortable(r.Feedback.Metadata.DateRange.End), r.ID...), nil)
	})
	return dup, err
}

func (s *boltStore) ListReceived(ctx context.Context, domain string, since time.Time) ([]Received, error) {
	var out []Received
	err := s.do(ctx, read, func(tx *bolt.Tx) error {
		received, byEnd := tx.Bucket(bucketReceived), tx.Bucket(bucketReceivedByEnd)
		if received == nil || byEnd == nil {
			return nil
		}
		c := byEnd.Cursor()
		for k, _ := c.Seek(sortable(since.Unix() + 1)); k != nil; k, _ = c.Next() {
			v := received.Get(k[8:])
			if v == nil {
				continue
			}
			var r Received
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("received report %q: %w", k[8:], err)
			}
			if domain == "" || strings.EqualFold(r.Feedback.Policy.Domain, domain) {
				out = append(out, r)
			}
		}
		return nil
	})
	sortReceived(out)
	return out, err
}

// sortReceived puts reports oldest first.
func sortReceived(rs []Received) {
	slices.SortFunc(rs, func(a, b Received) int {
		return cmp.Or(cmp.Compare(a.Feedback.Metadata.DateRange.Begin, b.Feedback.Metadata.DateRange.Begin), strings.Compare(a.ID, b.ID))
	})
}

func (s *boltStore) AddMalformed(ctx context.Context, m Malformed) error {
	v, err := json.Marshal(s.limits.cut(m))
	if err != nil {
		return err
	}
	return s.do(ctx, create, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMalformed)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(sortable(m.ReceivedAt.UnixNano()), seq), v); err != nil {
			return err
		}
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			keys = append(keys, slices.Clone(k))
		}
		return deleteKeys(b, keys[:max(0, len(keys)-s.limits.max)])
	})
}

func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (s *boltStore) ListMalformed(ctx context.Context, since time.Time) ([]Malformed, error) {
	var out []Malformed
	err := s.do(ctx, read, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMalformed)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(sortable(since.UnixNano() + 1)); k != nil; k, v = c.Next() {
			var m Malformed
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("malformed message %x: %w", k, err)
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

func (s *boltStore) Prune(ctx context.Context, before time.Time) error {
	return s.do(ctx, change, func(tx *bolt.Tx) error {
		if err := pruneClaims(tx, time.Now()); err != nil {
			return err
		}
		if received, byEnd := tx.Bucket(bucketReceived), tx.Bucket(bucketReceivedByEnd); received != nil && byEnd != nil {
			old := keysBelow(byEnd, sortable(before.Unix()))
			for _, k := range old {
				if err := received.Delete(k[8:]); err != nil {
					return err
				}
			}
			if err := deleteKeys(byEnd, old); err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketMalformed); b != nil {
			return deleteKeys(b, keysBelow(b, sortable(before.UnixNano())))
		}
		return nil
	})
}

// keysBelow returns (copies of) b's keys whose first 8 bytes are below
// limit.
func keysBelow(b *bolt.Bucket, limit []byte) [][]byte {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
		keys = append(keys, slices.Clone(k))
	}
	return keys
}

// pruneClaims drops the claims expired at now.
func pruneClaims(tx *bolt.Tx, now time.Time) error {
	claims := tx.Bucket(bucketClaims)
	if claims == nil {
		return nil
	}
	var old [][]byte
	err := claims.ForEach(func(k, v []byte) error {
		var c boltClaim
		if json.Unmarshal(v, &c) != nil || !c.Until.After(now) {
			old = append(old, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return deleteKeys(claims, old)
}

func (s *boltStore) Close() error { return nil }

var _ Store = (*boltStore)(nil)
