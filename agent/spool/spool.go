// Package spool is the agent's durable outbox for detection events: a bbolt
// file that every detection passes through on its way to the fleet, and
// every analytics event (track ends, line crossings, zone events, with
// their snapshot JPEGs), which share the seq stream and the byte budget.
//
// Append gives each event its seq (per device, monotonic, never reused, also
// across restarts) and returns only once the events are fsync'd; concurrent
// Appends share one bbolt transaction (group commit by one committer
// goroutine). The link to the fleet reads batches in seq order with Next
// (NextBytes: bounded by bytes too) and deletes what the fleet has stored
// with Ack; nothing else removes events
// except the bounds: the spool keeps within Options.MaxBytes on disk and
// Options.MaxAge, dropping the oldest events first and counting them (Stats,
// metrics). Append never fails because the spool is full: on a full file or
// disk (ENOSPC) it drops the oldest events and retries. Only when nothing is
// left to drop and the disk still has no room does that one Append fail; the
// spool stays open and later Appends try again.
//
// bbolt files never shrink, so the spool compacts itself (bbolt.Compact into
// a new file, fsync, atomic rename), at most once per CompactInterval, when
// the file has grown past a quarter of MaxBytes (and 1 MiB) and more than
// half of it is free pages, e.g. after a long broker outage has drained.
// Freed pages are reused in between, so a spool that is acked as it goes
// stays at the size of its largest backlog.
//
// The file layout is described at schemaVersion in schema.go and the record
// encoding at recordFormat in record.go.
package spool

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"edgefleet/fleet/api"
	"edgefleet/internal/atomicfile"
)

// Defaults and limits of Options.
const (
	// DefaultMaxBytes is the file size cap when Options.MaxBytes is zero.
	DefaultMaxBytes = 256 << 20
	// MinMaxBytes is the smallest MaxBytes Open accepts.
	MinMaxBytes = 1 << 20
	// DefaultMaxBatch is the events per commit when Options.MaxBatch is zero.
	DefaultMaxBatch = 8192
	// DefaultCompactInterval is the least time between automatic compactions
	// when Options.CompactInterval is zero.
	DefaultCompactInterval = time.Minute
)

// compactSuffix names the temporary file a compaction writes beside the spool.
const compactSuffix = ".compact"

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("spool: closed")

// Options configure a Spool. The zero value is usable: a 256 MiB file, no
// age limit, batches of up to 8192 events committed without added delay.
type Options struct {
	// MaxBytes caps the spool file's size on disk (bbolt refuses to grow it
	// further). Stored events are kept within half of it, the byte budget,
	// dropping the oldest first; the other half is room for bbolt's pages,
	// free pages and the commit in flight. While a compaction runs, a second
	// file as big as the live events exists for a moment. Zero means
	// DefaultMaxBytes; below MinMaxBytes is an error.
	MaxBytes int64
	// MaxAge drops events that were appended longer ago than this, checked on
	// every commit and by a sweep every MaxAge/8 (between 100ms and a
	// minute). Zero means no age limit.
	MaxAge time.Duration
	// MaxBatch caps the events in one commit (one fsync). Zero means
	// DefaultMaxBatch. One Append is never split, so a larger call is
	// committed alone.
	MaxBatch int
	// MaxDelay is how long the committer waits for more Appends before it
	// commits a batch that is not full. Zero means no wait: Appends that
	// arrive while a commit is in flight form the next batch, which is group
	// commit with no added latency.
	MaxDelay time.Duration
	// CompactInterval is the least time between two automatic compactions.
	// Zero means DefaultCompactInterval; negative turns automatic compaction
	// off (Compact still works).
	CompactInterval time.Duration
	// Logger receives the spool's few log lines. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for spool times and MaxAge. Nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.MaxBytes == 0:
		o.MaxBytes = DefaultMaxBytes
	case o.MaxBytes < MinMaxBytes:
		return o, fmt.Errorf("max_bytes %d is below the minimum %d", o.MaxBytes, MinMaxBytes)
	case o.MaxBytes > math.MaxInt:
		return o, fmt.Errorf("max_bytes %d is too large", o.MaxBytes)
	}
	if o.MaxAge < 0 {
		return o, fmt.Errorf("max_age %v is negative", o.MaxAge)
	}
	if o.MaxBatch < 0 {
		return o, fmt.Errorf("max_batch %d is negative", o.MaxBatch)
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxDelay < 0 {
		return o, fmt.Errorf("max_delay %v is negative", o.MaxDelay)
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = DefaultCompactInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Stats is a snapshot of a spool's state.
type Stats struct {
	Depth       uint64        // events stored, not yet acknowledged
	Bytes       uint64        // their size in the file (key, record, bbolt element header)
	BudgetBytes uint64        // the most Bytes may reach before the oldest are dropped
	FileBytes   int64         // size of the file on disk after the last commit
	FirstSeq    uint64        // seq of the oldest stored event; 0 when empty
	NextSeq     uint64        // seq the next appended event gets
	OldestAge   time.Duration // age of the oldest stored event (by spool time); 0 when empty
	DroppedCap  uint64        // events dropped for the byte budget, over the file's life
	DroppedAge  uint64        // events dropped for MaxAge, over the file's life
	DroppedFull uint64        // events dropped because the disk or file was full, over the file's life
	Appended    uint64        // events appended since Open
	Acked       uint64        // events deleted by Ack since Open
	Compactions uint64        // compactions since Open
}

// Dropped is the sum of the drop counters.
func (s Stats) Dropped() uint64 { return s.DroppedCap + s.DroppedAge + s.DroppedFull }

// Spool is a durable, bounded outbox of events. It is safe for concurrent
// use; Ready is meant for a single reader.
type Spool struct {
	path       string
	opts       Options
	log        *slog.Logger
	m          *metrics
	sweepEvery time.Duration

	reqs   chan *request
	done   chan struct{}
	ready  chan struct{}
	maxTx  uint64 // bytes gathered into one commit before it closes
	minCmp int64  // smallest file worth compacting automatically

	// closeMu guards closed and the sends on reqs.
	closeMu sync.RWMutex
	closed  bool

	// dbmu guards db and dbErr; the committer replaces db when compacting.
	dbmu  sync.RWMutex
	db    *bolt.DB
	dbErr error // why db is nil

	// Owned by the committer goroutine.
	cur         persisted
	budget      uint64
	lastCompact time.Time
	lastDropLog time.Time

	// stmu guards st.
	stmu sync.Mutex
	st   Stats
	// dropped is the committer's list as last committed; never changed in
	// place (outcome.dropSeqs copies it).
	dropped DroppedSeqs
	// oldestUs is the spool time of the oldest event, unix µs; 0 when empty.
	oldestUs uint64
}

// request is one Append, Ack or Compact handed to the committer.
type request struct {
	recs    [][]byte // record bodies, each with 4 spare bytes of capacity for the CRC
	size    uint64   // their stored size
	acks    []api.SeqRange
	compact bool

	first, last uint64
	err         error
	done        chan struct{}
}

// Open opens or creates the spool file at path. It upgrades files of older
// schema versions and refuses newer ones (ErrVersion) and files that are not
// spools (ErrSchema). A leftover of an interrupted compaction is removed.
func Open(path string, opts Options) (*Spool, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	if err := os.Remove(path + compactSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("spool: open %s: remove stale compaction: %w", path, err)
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	s := &Spool{
		path:   path,
		opts:   o,
		log:    o.Logger.With("spool_path", path),
		reqs:   make(chan *request, 1024),
		done:   make(chan struct{}),
		ready:  make(chan struct{}, 1),
		budget: uint64(o.MaxBytes / 2),
	}
	s.maxTx = max(s.budget/4, 1)
	s.minCmp = max(o.MaxBytes/4, 1<<20)
	if o.MaxAge > 0 {
		s.sweepEvery = min(max(o.MaxAge/8, 100*time.Millisecond), time.Minute)
	}
	db, err := s.openDB()
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	var found uint64
	err = guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			var err error
			found, err = initSchema(tx)
			return err
		})
	})
	if err == nil && created {
		err = atomicfile.SyncDir(filepath.Dir(path))
	}
	if err == nil {
		err = guard(func() error { return db.View(s.load) })
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	if found != 0 && found < schemaVersion {
		s.log.Info("spool schema upgraded", "from_version", found, "to_version", schemaVersion)
	}
	s.db = db
	s.m = newMetrics(s)
	s.publish(0, 0)
	go s.run()
	return s, nil
}

func (s *Spool) openDB() (*bolt.DB, error) {
	alloc := allocSize(s.opts.MaxBytes)
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{
		Timeout: time.Second, // another process holds the file
		// The freelist is rebuilt by a scan at open instead of being written
		// on every commit: cheaper commits, and no freelist pages that could
		// push the file towards MaxBytes.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		MaxSize:        s.softMax(),
	})
	if err != nil {
		return nil, err
	}
	// Grow in small steps so the file stays close to what it holds.
	db.AllocSize = alloc
	return db, nil
}

// allocSize is the step in which bbolt grows the file.
func allocSize(maxBytes int64) int { return int(min(max(maxBytes/32, 32<<10), 16<<20)) }

// softMax is the file size bbolt may grow to in normal commits. The last two
// growth steps below MaxBytes are kept for the transaction that drops the
// oldest events when this limit is hit, since bbolt needs fresh pages even
// to delete.
func (s *Spool) softMax() int { return int(s.opts.MaxBytes) - 2*allocSize(s.opts.MaxBytes) }

// load reads the persisted state into the committer's and Stats' copies.
func (s *Spool) load(tx *bolt.Tx) error {
	p, err := readMeta(tx)
	if err != nil {
		return err
	}
	s.cur = p
	s.oldestUs, s.st.FirstSeq = firstRecord(tx.Bucket(bucketEvents))
	return nil
}

func firstRecord(b *bolt.Bucket) (spoolUs, seq uint64) {
	k, v := b.Cursor().First()
	if k == nil {
		return 0, 0
	}
	seq, _ = keySeq(k)
	t, _ := recordSpoolTime(v)
	return max(t, 1), seq
}

// guard turns a panic of bbolt on a damaged file into an error.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt: %v", ErrSchema, r)
		}
	}()
	return fn()
}

// Append stores events, assigning them consecutive seqs (their Seq fields are
// ignored), and returns the first and last seq once they are fsync'd. Later,
// events may be dropped to honour MaxBytes and MaxAge, oldest first; when one
// call alone holds more than the byte budget its oldest events are dropped at
// once. If ctx ends before the commit, Append returns ctx's error, and the
// events may or may not have been stored. After Close it returns ErrClosed.
func (s *Spool) Append(ctx context.Context, events ...api.Event) (first, last uint64, err error) {
	if len(events) == 0 {
		return 0, 0, nil
	}
	now := uint64(max(s.opts.Now().UnixMicro(), 1))
	total := 0
	for i := range events {
		total += bodySize(&events[i])
	}
	buf := make([]byte, 0, total)
	r := &request{recs: make([][]byte, len(events))}
	for i := range events {
		start := len(buf)
		buf = appendBody(buf, now, &events[i])
		end := len(buf)
		buf = append(buf, 0, 0, 0, 0)
		r.recs[i] = buf[start : end : end+4]
		r.size += uint64(8 + end - start + 4 + elemOverhead)
	}
	if err := s.do(ctx, r); err != nil {
		return 0, 0, fmt.Errorf("spool: append: %w", err)
	}
	return r.first, r.last, nil
}

// Ack deletes the events in ranges (inclusive); seqs that are not stored are
// ignored, so repeating an Ack is harmless. It returns once the deletion is
// fsync'd.
func (s *Spool) Ack(ctx context.Context, ranges ...api.SeqRange) error {
	if len(ranges) == 0 {
		return nil
	}
	for i, rg := range ranges {
		if rg.To < rg.From {
			return fmt.Errorf("spool: ack: range %d: to %d below from %d", i, rg.To, rg.From)
		}
	}
	r := &request{acks: append([]api.SeqRange(nil), ranges...)}
	if err := s.do(ctx, r); err != nil {
		return fmt.Errorf("spool: ack: %w", err)
	}
	return nil
}

// Compact rewrites the file without its free pages now, whatever the
// automatic policy says.
func (s *Spool) Compact(ctx context.Context) error {
	r := &request{compact: true}
	if err := s.do(ctx, r); err != nil {
		return fmt.Errorf("spool: compact: %w", err)
	}
	return nil
}

// do hands r to the committer and waits for its result.
func (s *Spool) do(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.reqs <- r:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("%w (the request may still complete)", ctx.Err())
	}
}

// Next returns up to max events with seq above after, in seq order; Next(ctx,
// 0, n) starts at the oldest stored event. If a stored record is damaged,
// Next returns the events before it and a *CorruptError (wrapping ErrCorrupt)
// naming its seq; acknowledging that seq removes it.
func (s *Spool) Next(ctx context.Context, after uint64, max int) ([]api.Event, error) {
	return s.NextBytes(ctx, after, max, 0)
}

// NextBytes is Next that also stops before the records it returns pass
// maxBytes in all (their stored size, snapshot bytes included; 0: no
// bound); the first event comes whatever its size. The link's sender reads
// with it so that a backlog of events with snapshots is not read hundreds
// at a time for a batch that holds a few.
func (s *Spool) NextBytes(ctx context.Context, after uint64, max, maxBytes int) ([]api.Event, error) {
	if max <= 0 {
		return nil, fmt.Errorf("spool: next: max %d is not positive", max)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("spool: next: %w", err)
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	s.dbmu.RLock()
	defer s.dbmu.RUnlock()
	if s.db == nil {
		return nil, fmt.Errorf("spool: next: %w", s.dbErr)
	}
	var out []api.Event
	err := guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			out = make([]api.Event, 0, min(uint64(max), s.Stats().Depth))
			in := interner{}
			size := 0
			c := tx.Bucket(bucketEvents).Cursor()
			for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
				if size += len(v); maxBytes > 0 && size > maxBytes && len(out) > 0 {
					break
				}
				seq, ok := keySeq(k)
				if !ok {
					return &CorruptError{Seq: after + 1, Reason: fmt.Sprintf("key of %d bytes after it", len(k))}
				}
				e, _, err := decodeRecord(seq, v, in)
				if err != nil {
					return err
				}
				out = append(out, e)
			}
			return nil
		})
	})
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			return out, err
		}
		return nil, fmt.Errorf("spool: next: %w", err)
	}
	return out, nil
}

// Ready receives a value after commits that stored new events. It is
// buffered by one, so a single reader (the sender) that drains Next after
// each receive misses nothing.
func (s *Spool) Ready() <-chan struct{} { return s.ready }

// Stats returns a snapshot of the spool's counters.
func (s *Spool) Stats() Stats {
	s.stmu.Lock()
	defer s.stmu.Unlock()
	st := s.st
	if s.oldestUs != 0 {
		st.OldestAge = max(s.opts.Now().Sub(time.UnixMicro(int64(s.oldestUs))), 0)
	}
	return st
}

// Path returns the spool file's path.
func (s *Spool) Path() string { return s.path }

// Close waits for pending Appends and Acks to commit and closes the file. It
// is safe to call more than once; later calls return nil.
func (s *Spool) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.closeMu.Unlock()
	<-s.done
	s.dbmu.Lock()
	defer s.dbmu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db, s.dbErr = nil, ErrClosed
	if err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}

// run is the committer: it gathers requests into batches and commits each
// batch in one transaction.
func (s *Spool) run() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.sweepEvery > 0 {
		t := time.NewTicker(s.sweepEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		var batch []*request
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return
			}
			batch = append(batch, r)
		case <-tick:
			if s.needSweep() {
				s.commit(nil)
			}
			continue
		}
		batch, open := s.gather(batch)
		s.commit(batch)
		if !open {
			return
		}
	}
}

// gather adds queued requests to batch until it holds MaxBatch events or
// maxTx bytes, or (after MaxDelay) nothing more is queued. open is false once
// reqs is closed.
func (s *Spool) gather(batch []*request) (_ []*request, open bool) {
	n, size := len(batch[0].recs), batch[0].size
	var timeout <-chan time.Time
	if s.opts.MaxDelay > 0 {
		t := time.NewTimer(s.opts.MaxDelay)
		defer t.Stop()
		timeout = t.C
	}
	for n < s.opts.MaxBatch && size < s.maxTx {
		var r *request
		var ok bool
		if timeout == nil {
			select {
			case r, ok = <-s.reqs:
			default:
				return batch, true
			}
		} else {
			select {
			case r, ok = <-s.reqs:
			case <-timeout:
				return batch, true
			}
		}
		if !ok {
			return batch, false
		}
		batch = append(batch, r)
		n += len(r.recs)
		size += r.size
	}
	return batch, true
}

func (s *Spool) needSweep() bool {
	s.stmu.Lock()
	defer s.stmu.Unlock()
	return s.oldestUs != 0 && s.oldestUs < s.cutoffUs()
}

// cutoffUs is the spool time below which events are too old; 0 without MaxAge.
func (s *Spool) cutoffUs() uint64 {
	if s.opts.MaxAge <= 0 {
		return 0
	}
	return uint64(max(s.opts.Now().Add(-s.opts.MaxAge).UnixMicro(), 0))
}

// outcome is what one committed transaction changed.
type outcome struct {
	p                       persisted
	oldestUs, firstSeq      uint64
	appended, acked         uint64
	dropCap, dropAge, dropF uint64
	seqs                    [][2]uint64 // first, last per request
	ownDropped              bool        // p.dropped.Ranges is this outcome's copy
}

// commit writes one batch, retrying after dropping the oldest events when
// the file or disk is full, and answers the batch's requests.
func (s *Spool) commit(batch []*request) {
	start := time.Now()
	out, err := s.commitOnce(batch)
	for attempt := 0; err != nil && isFull(err) && attempt < 8; attempt++ {
		dropped, derr := s.dropForSpace()
		s.log.Warn("spool full; dropped oldest events", "err", err, "dropped", dropped, "budget_bytes", s.budget, "attempt", attempt+1)
		if derr != nil || dropped == 0 {
			s.log.Error("spool full and nothing more to drop", "err", derr)
			break
		}
		out, err = s.commitOnce(batch)
	}
	if err == nil {
		s.apply(out, time.Since(start))
		for i, r := range batch {
			r.first, r.last = out.seqs[i][0], out.seqs[i][1]
		}
		if out.appended > 0 {
			select {
			case s.ready <- struct{}{}:
			default:
			}
		}
	}
	// Answer the appends and acks before a compaction, which may take a while.
	asked := false
	for _, r := range batch {
		if r.compact {
			asked = true
			continue
		}
		r.err = err
		close(r.done)
	}
	var cerr error
	if err == nil && (asked || s.wantCompact()) {
		if cerr = s.compact(); cerr != nil {
			s.log.Error("spool compaction failed", "err", cerr)
		}
	}
	for _, r := range batch {
		if r.compact {
			r.err = cmp.Or(err, cerr)
			close(r.done)
		}
	}
}

func isFull(err error) bool {
	return errors.Is(err, berrors.ErrMaxSizeReached) || errors.Is(err, syscall.ENOSPC) ||
		errors.Is(err, syscall.EDQUOT) || strings.Contains(err.Error(), "no space left on device")
}

// commitOnce runs one read-write transaction for batch: acks, age expiry,
// the byte budget, then the appends, then the meta counters.
func (s *Spool) commitOnce(batch []*request) (outcome, error) {
	o := outcome{p: s.cur, seqs: make([][2]uint64, len(batch))}
	s.dbmu.RLock()
	db, dbErr := s.db, s.dbErr
	s.dbmu.RUnlock()
	if db == nil {
		return o, dbErr
	}
	var incoming uint64
	for _, r := range batch {
		incoming += r.size
	}
	cutoff := s.cutoffUs()
	err := guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			b.FillPercent = 1.0 // keys only ever go at the end
			c := b.Cursor()
			for _, r := range batch {
				for _, rg := range r.acks {
					for k, v := c.Seek(seqKey(rg.From)); k != nil; k, v = c.Seek(seqKey(rg.From)) {
						if seq, _ := keySeq(k); seq > rg.To {
							break
						}
						o.p.bytes -= min(o.p.bytes, uint64(len(k)+len(v)+elemOverhead))
						o.p.count -= min(o.p.count, 1)
						o.acked++
						if err := c.Delete(); err != nil {
							return err
						}
					}
				}
			}
			// Age first, then room for what comes in, oldest first.
			for k, v := c.First(); k != nil; k, v = c.First() {
				size := uint64(len(k) + len(v) + elemOverhead)
				if t, ok := recordSpoolTime(v); ok && t < cutoff {
					o.dropAge++
				} else if o.p.bytes+min(incoming, s.budget) > s.budget {
					o.dropCap++
				} else {
					break
				}
				seq, _ := keySeq(k)
				o.dropSeqs(seq, seq)
				o.p.bytes -= min(o.p.bytes, size)
				o.p.count -= min(o.p.count, 1)
				if err := c.Delete(); err != nil {
					return err
				}
			}
			keys := make([]byte, 0, 8*64)
			for i, r := range batch {
				if len(r.recs) == 0 {
					continue
				}
				o.seqs[i][0] = o.p.nextSeq
				// One request bigger than the budget keeps only its newest events.
				skip, size := 0, r.size
				for skip < len(r.recs) && size > s.budget {
					size -= uint64(8 + len(r.recs[skip]) + 4 + elemOverhead)
					skip++
				}
				if skip > 0 {
					o.dropCap += uint64(skip)
					o.dropSeqs(o.p.nextSeq, o.p.nextSeq+uint64(skip)-1)
					o.p.nextSeq += uint64(skip)
				}
				for _, body := range r.recs[skip:] {
					if len(keys)+8 > cap(keys) {
						keys = make([]byte, 0, 8*256)
					}
					keys = binary.BigEndian.AppendUint64(keys, o.p.nextSeq)
					k := keys[len(keys)-8:]
					v := sealRecord(k, body)
					if err := b.Put(k, v); err != nil {
						return err
					}
					o.p.nextSeq++
					o.p.count++
					o.p.bytes += uint64(len(k) + len(v) + elemOverhead)
					o.appended++
				}
				o.seqs[i][1] = o.p.nextSeq - 1
			}
			o.p.droppedCap += o.dropCap
			o.p.droppedAge += o.dropAge
			o.oldestUs, o.firstSeq = firstRecord(b)
			if o.ownDropped {
				if err := writeDropped(tx.Bucket(bucketMeta), o.p.dropped); err != nil {
					return err
				}
			}
			return writeMeta(tx, o.p)
		})
	})
	return o, err
}

// dropForSpace deletes the oldest quarter of the events in its own
// transaction, so that the next one can reuse their pages, and lowers the
// byte budget to what remains so the spool settles below the limit it hit.
func (s *Spool) dropForSpace() (uint64, error) {
	p := s.cur
	n := max(p.count/4, 1)
	s.budget = max(min(s.budget, p.bytes*3/4), MinMaxBytes/4)
	var o outcome
	s.dbmu.RLock()
	db := s.db
	s.dbmu.RUnlock()
	if db == nil || p.count == 0 {
		return 0, nil
	}
	// This transaction may use the reserve kept below MaxBytes.
	db.MaxSize = int(s.opts.MaxBytes)
	defer func() { db.MaxSize = s.softMax() }()
	err := guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			o = outcome{p: p}
			b := tx.Bucket(bucketEvents)
			c := b.Cursor()
			for k, v := c.First(); k != nil && o.dropF < n; k, v = c.First() {
				o.p.bytes -= min(o.p.bytes, uint64(len(k)+len(v)+elemOverhead))
				o.p.count--
				o.dropF++
				seq, _ := keySeq(k)
				o.dropSeqs(seq, seq)
				if err := c.Delete(); err != nil {
					return err
				}
			}
			o.p.droppedFl += o.dropF
			o.oldestUs, o.firstSeq = firstRecord(b)
			if o.ownDropped {
				if err := writeDropped(tx.Bucket(bucketMeta), o.p.dropped); err != nil {
					return err
				}
			}
			return writeMeta(tx, o.p)
		})
	})
	if err != nil {
		return 0, err
	}
	s.apply(o, 0)
	return o.dropF, nil
}

// apply publishes a committed outcome to the committer state, Stats and
// metrics.
func (s *Spool) apply(o outcome, took time.Duration) {
	s.cur = o.p
	s.stmu.Lock()
	s.oldestUs = o.oldestUs
	s.st.FirstSeq = o.firstSeq
	s.st.Appended += o.appended
	s.st.Acked += o.acked
	s.stmu.Unlock()
	s.publish(took, o.appended)
	s.m.observe(o, took)
	if d := o.dropCap + o.dropAge + o.dropF; d > 0 && time.Since(s.lastDropLog) > time.Minute {
		s.lastDropLog = time.Now()
		s.log.Warn("spool dropping oldest events", "dropped_cap", o.p.droppedCap, "dropped_age", o.p.droppedAge, "dropped_full", o.p.droppedFl, "depth", o.p.count)
	}
}

// publish copies the committer's counters into Stats.
func (s *Spool) publish(time.Duration, uint64) {
	var size int64
	if fi, err := os.Stat(s.path); err == nil {
		size = fi.Size()
	}
	s.stmu.Lock()
	defer s.stmu.Unlock()
	if size > s.st.FileBytes {
		// Best effort: without it a full disk can still be handled by
		// MaxBytes' reserve only.
		_ = reserve(s.path, size)
	}
	s.st.Depth = s.cur.count
	s.st.Bytes = s.cur.bytes
	s.st.BudgetBytes = s.budget
	s.st.FileBytes = size
	s.st.NextSeq = s.cur.nextSeq
	s.st.DroppedCap = s.cur.droppedCap
	s.st.DroppedAge = s.cur.droppedAge
	s.st.DroppedFull = s.cur.droppedFl
	s.dropped = s.cur.dropped
}

// wantCompact says whether the file has grown past a quarter of MaxBytes
// (at least 1 MiB) and more than half of it is free pages.
func (s *Spool) wantCompact() bool {
	if s.opts.CompactInterval < 0 || (!s.lastCompact.IsZero() && time.Since(s.lastCompact) < s.opts.CompactInterval) {
		return false
	}
	s.stmu.Lock()
	size := s.st.FileBytes
	s.stmu.Unlock()
	if size < s.minCmp {
		return false
	}
	s.dbmu.RLock()
	defer s.dbmu.RUnlock()
	if s.db == nil {
		return false
	}
	bs := s.db.Stats()
	free := int64(bs.FreePageN+bs.PendingPageN) * int64(s.db.Info().PageSize)
	return free*2 > size
}

// compact copies the live data into a new file, syncs it and renames it over
// the spool. A crash at any point leaves either the old or the new complete
// file under path (Open removes a leftover temporary file).
func (s *Spool) compact() error {
	s.lastCompact = time.Now()
	start := time.Now()
	tmp := s.path + compactSuffix
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("spool: compact: %w", err)
	}
	s.dbmu.RLock()
	src := s.db
	s.dbmu.RUnlock()
	if src == nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("spool: compact: %w", s.dbErr)
	}
	err = guard(func() error { return bolt.Compact(dst, src, 4<<20) })
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("spool: compact: %w", err)
	}
	before := s.Stats().FileBytes

	s.dbmu.Lock()
	defer s.dbmu.Unlock()
	if err := s.db.Close(); err != nil {
		s.db, s.dbErr = nil, fmt.Errorf("close before compaction rename: %w", err)
		return fmt.Errorf("spool: compact: %w", s.dbErr)
	}
	s.db = nil
	renameErr := os.Rename(tmp, s.path)
	if renameErr == nil {
		renameErr = atomicfile.SyncDir(filepath.Dir(s.path))
	}
	// Reopen whatever path holds now: the new file, or the old one if the
	// rename failed.
	db, err := s.openDB()
	if err != nil {
		s.dbErr = fmt.Errorf("reopen after compaction: %w", err)
		return fmt.Errorf("spool: compact: %w", s.dbErr)
	}
	s.db = db
	if renameErr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("spool: compact: %w", renameErr)
	}
	var after int64
	if fi, err := os.Stat(s.path); err == nil {
		after = fi.Size()
	}
	s.stmu.Lock()
	s.st.FileBytes = after
	s.st.Compactions++
	s.stmu.Unlock()
	s.m.compactions.Inc()
	s.log.Info("spool compacted", "before_bytes", before, "after_bytes", after, "took_ms", time.Since(start).Milliseconds())
	return nil
}
