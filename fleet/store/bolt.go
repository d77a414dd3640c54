package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

// Schema of the bbolt file, version 1:
//
//	meta      "version" -> "1"
//	          "count"   -> uint64 records stored
//	          "bytes"   -> uint64 bytes of record values stored
//	events    time_us(8) | device | 0x00 | seq(8) -> record value (see encodeValue)
//	seen      device -> the seqs ever stored, as uvarint pairs (from, to-from)
//	analytics time_us(8) | device | 0x00 | seq(8) -> analytics event, JSON EventRecord
//	analytics_seq  device | 0x00 | seq(8) -> time_us(8), to find an event by (device, seq)
//	snapshots time_us(8) | device | 0x00 | seq(8) | part ('c' crop, 't' thumb) -> JPEG
//	          meta "snap_bytes" -> uint64 bytes of JPEG stored
//
// The analytics buckets were added without a version change: a file
// without them gets them at Open, and an older build ignores them.
//
// events orders records by capture time: new records land at its tail, so a
// commit dirties few pages, and time-range scans and retention walk it in
// order. seen makes Ingest idempotent on (device, seq): it is loaded into
// memory at Open and rewritten for each device a commit touches, in the
// same transaction, so it always matches events. Agents send seqs in order,
// so a device's entry is a handful of ranges. Retention deletes records but
// not their seen ranges: an expired event sent again is still a duplicate.
const schemaVersion = "1"

var (
	bucketMeta   = []byte("meta")
	bucketEvents = []byte("events")
	bucketSeen   = []byte("seen")
	bucketEvA    = []byte("analytics")
	bucketEvSeq  = []byte("analytics_seq")
	bucketSnaps  = []byte("snapshots")
	keySnapBytes = []byte("snap_bytes")

	keyVersion = []byte("version")
	keyCount   = []byte("count")
	keyBytes   = []byte("bytes")
)

// BoltOptions configures OpenBolt. The zero value is usable.
type BoltOptions struct {
	// Retention is applied by Retain.
	Retention Retention
	// MaxBatch caps how many Ingest calls one commit groups; 0 means 4096.
	MaxBatch int
	// Timeout for acquiring the file lock; 0 means 5s.
	Timeout time.Duration
}

// Stats are running totals of a Bolt store, for metrics.
type Stats struct {
	Commits      uint64 // bbolt transactions that stored events
	Calls        uint64 // Ingest calls committed
	Stored       uint64 // events stored
	Duplicates   uint64 // events seen again
	CommitNanos  uint64 // total time spent in commits
	Records      uint64 // records in the store now
	RecordsBytes uint64 // bytes of records in the store now
	PageWrites   uint64 // pages written by bbolt, all transactions
	// WriteNanos and SpillNanos are bbolt's time writing pages (with fsync)
	// and preparing them, all transactions.
	WriteNanos, SpillNanos uint64
}

// Bolt is a Store in a bbolt file. Concurrent Ingest calls are grouped
// into one fsync'd transaction (group commit). It is safe for concurrent use.
type Bolt struct {
	db  *bolt.DB
	opt BoltOptions

	reqs chan *ingestReq
	quit chan struct{}
	done chan struct{}

	mu     sync.RWMutex
	closed bool

	commits, calls, stored, dups, commitNanos atomic.Uint64
	records, recordsBytes                     atomic.Uint64
	closeOnce                                 sync.Once

	// seen mirrors the seen bucket; only Open and the commit loop touch it.
	seen map[string]rangeSet
}

var (
	_ Store     = (*Bolt)(nil)
	_ Submitter = (*Bolt)(nil)
)

type ingestReq struct {
	device string
	events []api.Event
	keys   [][]byte // eventKey of each event
	vals   [][]byte // JSON Record of each event
	res    Result
	done   func(Result, error)
}

// OpenBolt opens or creates the store at path.
func OpenBolt(path string, opt BoltOptions) (*Bolt, error) {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 4096
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  opt.Timeout,
		PageSize: 64 << 10, // fewer pages, fewer writes per commit
		// Map ahead so that a growing file is not remapped (which waits for readers) often.
		InitialMmapSize: 256 << 20,
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  true,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Bolt{db: db, opt: opt, seen: map[string]rangeSet{}, reqs: make(chan *ingestReq, opt.MaxBatch), quit: make(chan struct{}), done: make(chan struct{})}
	if err := db.Update(s.init); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	go s.commitLoop()
	return s, nil
}

func (s *Bolt) init(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(keyVersion); {
	case v == nil:
		if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
			return err
		}
	case string(v) != schemaVersion:
		return fmt.Errorf("schema version %q, this build reads %q", v, schemaVersion)
	}
	for _, b := range [][]byte{bucketEvents, bucketSeen, bucketEvA, bucketEvSeq, bucketSnaps} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketSeen).ForEach(func(k, v []byte) error {
		rs, err := decodeRanges(v)
		if err != nil {
			return fmt.Errorf("seen %q: %w", k, err)
		}
		s.seen[string(k)] = rs
		return nil
	}); err != nil {
		return err
	}
	s.records.Store(getUint(meta, keyCount))
	s.recordsBytes.Store(getUint(meta, keyBytes))
	return nil
}

func getUint(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putUint(b *bolt.Bucket, k []byte, n uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, n))
}

// Ingest implements Store; see there.
func (s *Bolt) Ingest(ctx context.Context, device string, events []api.Event) (Result, error) {
	type answer struct {
		res Result
		err error
	}
	ch := make(chan answer, 1)
	if err := s.Submit(ctx, device, events, func(res Result, err error) { ch <- answer{res, err} }); err != nil {
		return Result{}, err
	}
	select {
	case a := <-ch:
		return a.res, a.err
	case <-ctx.Done():
		// The commit may still happen; the device resends and dedup absorbs it.
		return Result{}, fmt.Errorf("store: ingest: %w", ctx.Err())
	}
}

// Submit implements Submitter: it queues events of one device for the next
// group commit and returns; done runs on the commit goroutine once they are
// durable (or failed), so it must be quick. Submit blocks only while the
// queue is full.
func (s *Bolt) Submit(ctx context.Context, device string, events []api.Event, done func(Result, error)) error {
	if err := api.ValidateID(device); err != nil {
		return fmt.Errorf("store: ingest: %w", err)
	}
	if len(events) == 0 {
		done(Result{}, nil)
		return nil
	}
	// Encode here, in the caller's goroutine, to keep the commit loop short.
	r := &ingestReq{device: device, events: events, done: done,
		keys: make([][]byte, len(events)), vals: make([][]byte, len(events))}
	for i := range events {
		e := &events[i]
		r.keys[i] = eventKey(position{time: timeKey(e.Time), device: device, seq: e.Seq})
		if e.IsAnalytics() {
			rec, _ := splitEvent(device, e)
			r.vals[i] = encodeEvent(&rec)
		} else {
			r.vals[i] = encodeValue(e)
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("store: ingest: %w", ctx.Err())
	}
}

// commitLoop groups pending Ingest calls into single transactions.
func (s *Bolt) commitLoop() {
	defer close(s.done)
	batch := make([]*ingestReq, 0, s.opt.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-s.quit:
			// Close has stopped new senders; commit what is queued.
			for {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				s.commit(batch)
			}
			return
		}
	fill:
		for len(batch) < s.opt.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

func (s *Bolt) commit(batch []*ingestReq) {
	start := time.Now()
	var stored, dups, nbytes uint64
	// Changes to seen apply to memory only once the transaction commits.
	touched := map[string]rangeSet{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		stored, dups, nbytes = 0, 0, 0
		clear(touched)
		meta, evs, seen := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents), tx.Bucket(bucketSeen)
		evs.FillPercent = 0.9 // keys arrive mostly in time order: pack the pages
		var ana int
		for _, r := range batch {
			r.res = Result{}
			rs, ok := touched[r.device]
			if !ok {
				rs = slices.Clone(s.seen[r.device])
			}
			for i := range r.events {
				seq := r.events[i].Seq
				if rs.has(seq) {
					r.res.Duplicates++
					continue
				}
				rs = rs.add(seq)
				r.res.Stored++
				if r.events[i].IsAnalytics() {
					ana++
					if err := putAnalytics(tx, r.device, &r.events[i], r.keys[i], r.vals[i]); err != nil {
						return err
					}
					continue
				}
				if err := evs.Put(r.keys[i], r.vals[i]); err != nil {
					return err
				}
				nbytes += uint64(len(r.vals[i]))
			}
			touched[r.device] = rs
			stored += uint64(r.res.Stored)
			dups += uint64(r.res.Duplicates)
		}
		if stored == 0 {
			return nil
		}
		stored -= uint64(ana) // records and bytes count detections
		for d, rs := range touched {
			if err := seen.Put([]byte(d), rs.encode()); err != nil {
				return err
			}
		}
		if err := putUint(meta, keyCount, getUint(meta, keyCount)+stored); err != nil {
			return err
		}
		return putUint(meta, keyBytes, getUint(meta, keyBytes)+nbytes)
	})
	if err == nil {
		for d, rs := range touched {
			s.seen[d] = rs
		}
		s.commits.Add(1)
		s.calls.Add(uint64(len(batch)))
		s.stored.Add(stored)
		s.dups.Add(dups)
		s.records.Add(stored)
		s.recordsBytes.Add(nbytes)
		s.commitNanos.Add(uint64(time.Since(start)))
	}
	for _, r := range batch {
		if err != nil {
			r.done(Result{}, fmt.Errorf("store: ingest: %w", err))
		} else {
			r.done(r.res, nil)
		}
	}
}

// Query implements Store; see there. It walks events newest first and
// filters the device by key, without decoding other devices' records.
func (s *Bolt) Query(ctx context.Context, q Query) (Page, error) {
	cur, err := cursorPos(q.Cursor)
	if err != nil {
		return Page{}, err
	}
	limit := q.limit()
	var page Page
	err = s.view(func(tx *bolt.Tx) error {
		evs := tx.Bucket(bucketEvents)
		add := func(k, v []byte) (bool, error) {
			p, ok := parseEventKey(k)
			var r Record
			if !ok || decodeValue(p, v, &r) != nil {
				return false, fmt.Errorf("decode record %x: %w", k, errBadValue)
			}
			if !q.match(&r) {
				return false, nil
			}
			page.Records = append(page.Records, r)
			return len(page.Records) >= limit, nil
		}
		return walkNewest(ctx, evs, cur, q.From, q.To, q.Device, add)
	})
	if err != nil {
		return Page{}, fmt.Errorf("store: query: %w", err)
	}
	if len(page.Records) >= limit {
		page.Next = encodeCursor(posOf(&page.Records[len(page.Records)-1]))
	}
	return page, nil
}

// walkNewest calls fn with the keys and values of b (keyed by eventKey)
// newest first: from below the cursor position cur if set, else below to
// if set, down to from; keys of devices other than device (if set) are
// skipped without a call. fn returns true to stop.
func walkNewest(ctx context.Context, b *bolt.Bucket, cur *position, from, to time.Time, device string, fn func(k, v []byte) (bool, error)) error {
	c := b.Cursor()
	var k, v []byte
	switch {
	case cur != nil:
		ck := eventKey(*cur)
		if k, v = c.Seek(ck); k == nil || bytes.Compare(k, ck) >= 0 {
			k, v = c.Prev()
		}
	case !to.IsZero():
		if k, _ = c.Seek(binary.BigEndian.AppendUint64(nil, timeKey(to.UnixMicro()))); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
	default:
		k, v = c.Last()
	}
	lowest := uint64(0)
	if !from.IsZero() {
		lowest = timeKey(from.UnixMicro())
	}
	for n := 0; k != nil; k, v = c.Prev() {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if len(k) >= 8 && binary.BigEndian.Uint64(k[:8]) < lowest {
			return nil
		}
		if device != "" && !keyHasDevice(k, device) {
			continue
		}
		if stop, err := fn(k, v); err != nil || stop {
			return err
		}
	}
	return nil
}

// Count implements Store; see there. From and To must be set.
func (s *Bolt) Count(ctx context.Context, q Query, width time.Duration) ([]Bucket, error) {
	from, to, err := bucketRange(q, width)
	if err != nil {
		return nil, err
	}
	cnt := newCounter(from, to, width.Microseconds())
	decode := q.Camera != "" || q.Label != ""
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		n := 0
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, timeKey(q.From.UnixMicro()))); k != nil; k, v = c.Next() {
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			p, ok := parseEventKey(k)
			if !ok {
				continue
			}
			if p.time >= timeKey(to) {
				break
			}
			if q.Device != "" && p.device != q.Device {
				continue
			}
			if decode {
				var r Record
				if err := decodeValue(p, v, &r); err != nil || !q.match(&r) {
					continue
				}
			}
			cnt.add(int64(p.time))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: count: %w", err)
	}
	return cnt.buckets(), nil
}

// retainChunk bounds the deletions of one retention transaction.
const retainChunk = 20000

// Retain implements Store; see there.
func (s *Bolt) Retain(ctx context.Context, now time.Time) (int, error) {
	rt := s.opt.Retention
	if err := s.retainEvents(ctx, now); err != nil {
		return 0, fmt.Errorf("store: retain analytics: %w", err)
	}
	if rt.MaxAge <= 0 && rt.MaxEvents <= 0 && rt.MaxBytes <= 0 {
		return 0, nil
	}
	cutoff := uint64(0)
	if rt.MaxAge > 0 {
		cutoff = timeKey(now.Add(-rt.MaxAge).UnixMicro())
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("store: retain: %w", err)
		}
		n := 0
		var freed uint64
		err := s.update(func(tx *bolt.Tx) error {
			n, freed = 0, 0
			meta, evs := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents)
			count, size := getUint(meta, keyCount), getUint(meta, keyBytes)
			over := func() bool {
				return rt.MaxEvents > 0 && count > uint64(rt.MaxEvents) || rt.MaxBytes > 0 && size > uint64(rt.MaxBytes)
			}
			c := evs.Cursor()
			var dead [][]byte
			for k, v := c.First(); k != nil && n < retainChunk; k, v = c.Next() {
				if len(k) >= 8 && binary.BigEndian.Uint64(k[:8]) >= cutoff && !over() {
					break
				}
				dead = append(dead, k)
				n++
				count--
				size -= min(size, uint64(len(v)))
				freed += uint64(len(v))
			}
			for _, k := range dead {
				if err := evs.Delete(k); err != nil {
					return err
				}
			}
			if n == 0 {
				return nil
			}
			if err := putUint(meta, keyCount, count); err != nil {
				return err
			}
			return putUint(meta, keyBytes, size)
		})
		if err != nil {
			return total, fmt.Errorf("store: retain: %w", err)
		}
		if n == 0 {
			return total, nil
		}
		s.records.Add(^uint64(n - 1)) // minus n; commits may run between
		s.recordsBytes.Add(^(freed - 1))
		total += n
		if n < retainChunk {
			return total, nil
		}
	}
}

func (s *Bolt) view(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

func (s *Bolt) update(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Update(fn)
}

// Stats returns running totals.
func (s *Bolt) Stats() Stats {
	txs := s.db.Stats().TxStats
	return Stats{
		Commits: s.commits.Load(), Calls: s.calls.Load(), Stored: s.stored.Load(),
		Duplicates: s.dups.Load(), CommitNanos: s.commitNanos.Load(),
		Records: s.records.Load(), RecordsBytes: s.recordsBytes.Load(),
		PageWrites: uint64(txs.GetWrite()), WriteNanos: uint64(txs.GetWriteTime()), SpillNanos: uint64(txs.GetSpillTime()),
	}
}

// Close commits queued Ingest calls and closes the file. It is safe to call twice.
func (s *Bolt) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		<-s.done
		if e := s.db.Close(); e != nil {
			err = fmt.Errorf("store: close: %w", e)
		}
	})
	return err
}
