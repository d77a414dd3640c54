package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/fleet/api"
)

// PostgresOptions configures OpenPostgres. The zero value is usable.
type PostgresOptions struct {
	// Retention is applied by Retain.
	Retention Retention
	// MaxBatch caps the events one commit groups; 0 means 16384.
	MaxBatch int
	// Workers is how many commits run at once; 0 means 2.
	Workers int
	// Linger is how long a commit waits for more calls once calls have
	// been arriving together (its previous commit grouped several): a
	// commit's fixed cost, in fleetd and in PostgreSQL, is then shared by
	// more batches. A lone caller never waits. 0 means 20ms (from 5ms: at
	// 3,000 simulated devices on two replicas, commits per batch went
	// from 0.20 to 0.09 and PostgreSQL's CPU per batch down a sixth, the
	// ack p50 up from 9 to 25 ms); negative, never. A linger also ends
	// once no call has arrived for Linger/8 (see lingerGap): callers that
	// each wait for their previous commit (a closed loop) have all
	// arrived by then, and waiting longer only idles them, while an
	// open stream of devices keeps arriving and lingers in full.
	Linger time.Duration
	// CommitTimeout bounds one commit; 0 means 10s. A commit that fails or
	// times out (the database is down) fails its calls, which are not acked.
	CommitTimeout time.Duration
	// Now is the clock that decides which day partitions to create; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Postgres is a Store in PostgreSQL (schema: fleet/database migrations).
// Concurrent Ingest calls of any devices are grouped into one INSERT ... ON
// CONFLICT DO NOTHING per commit; several fleetd replicas may share one
// database. It is safe for concurrent use.
//
// Differences from Bolt: retention drops whole day partitions where it can
// and deletes rows only in the oldest remaining day; an event whose
// position is at or before what retention has already dropped is counted
// as a duplicate and not stored (Bolt stores it and drops it at the next
// Retain); seqs are stored as bigint (a seq above 2^63 sorts negative).
// Analytics events (analytics_events, event_snapshots) have no watermark:
// one sent again after retention deleted it is stored again, where Bolt,
// which remembers every seq it stored, counts it as a duplicate.
type Postgres struct {
	pool *pgxpool.Pool
	opt  PostgresOptions
	log  *slog.Logger

	reqs chan *ingestReq
	quit chan struct{}
	wg   sync.WaitGroup

	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once

	parts partitions

	commits, calls, stored, dups, commitNanos atomic.Uint64
	records, recordsBytes                     atomic.Uint64
	lingered                                  atomic.Uint64 // commits that waited for more calls
	lingerIdle                                atomic.Uint64 // of those, lingers ended by lingerGap
}

var (
	_ Store     = (*Postgres)(nil)
	_ Submitter = (*Postgres)(nil)
)

// OpenPostgres opens the detection store in pool's database, whose schema
// database.Open has migrated, and creates the day partitions around now.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, opt PostgresOptions) (*Postgres, error) {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 16384
	}
	if opt.Workers <= 0 {
		opt.Workers = 2
	}
	if opt.Linger == 0 {
		opt.Linger = 20 * time.Millisecond
	}
	if opt.CommitTimeout <= 0 {
		opt.CommitTimeout = 10 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &Postgres{pool: pool, opt: opt, log: opt.Logger, reqs: make(chan *ingestReq, 4096), quit: make(chan struct{})}
	s.parts.known = map[int64]bool{}
	if err := s.parts.load(ctx, pool); err != nil {
		return nil, err
	}
	if err := s.parts.ensure(ctx, pool, s.log, aheadDays(opt.Now()), opt.Now()); err != nil {
		return nil, err
	}
	if err := s.loadTotals(ctx); err != nil {
		return nil, err
	}
	for range opt.Workers {
		s.wg.Go(s.commitLoop)
	}
	return s, nil
}

// Ingest implements Store; see there.
func (s *Postgres) Ingest(ctx context.Context, device string, events []api.Event) (Result, error) {
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
		return Result{}, fmt.Errorf("store: ingest: %w", ctx.Err())
	}
}

// Submit implements Submitter: the events join the next commit; done runs
// on a commit goroutine once they are committed (or failed), so it must be quick.
func (s *Postgres) Submit(ctx context.Context, device string, events []api.Event, done func(Result, error)) error {
	if err := api.ValidateID(device); err != nil {
		return fmt.Errorf("store: ingest: %w", err)
	}
	if len(events) == 0 {
		done(Result{}, nil)
		return nil
	}
	r := &ingestReq{device: device, events: events, done: done}
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

func (s *Postgres) commitLoop() {
	var batch []*ingestReq
	var linger, idle *time.Timer
	gap := lingerGap(s.opt.Linger)
	grouped := false // the previous commit grouped several calls
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
		var wait <-chan time.Time // nil: take what is queued, no more
		var lastArrival time.Time
		if grouped && s.opt.Linger > 0 {
			if linger == nil {
				linger = time.NewTimer(s.opt.Linger)
				idle = time.NewTimer(gap)
			} else {
				linger.Reset(s.opt.Linger)
				idle.Reset(gap)
			}
			wait = linger.C
			lastArrival = time.Now()
			s.lingered.Add(1)
		}
		n := len(batch[0].events)
		take := func(r *ingestReq) {
			batch = append(batch, r)
			n += len(r.events)
			if wait != nil {
				lastArrival = time.Now()
			}
		}
	fill:
		for n < s.opt.MaxBatch {
			select {
			case r := <-s.reqs:
				take(r)
				continue
			default:
			}
			if wait == nil {
				break
			}
			select {
			case r := <-s.reqs:
				take(r)
			case <-idle.C:
				// The idle timer is not reset per arrival: when it fires,
				// it is re-armed for what is left of the gap since the last one.
				if left := gap - time.Since(lastArrival); left > 0 {
					idle.Reset(left)
					continue
				}
				s.lingerIdle.Add(1)
				wait = nil
			case <-wait:
				wait = nil
			case <-s.quit:
				break fill
			}
		}
		if linger != nil {
			// Since Go 1.23 a stopped or reset timer delivers no stale tick.
			linger.Stop()
			idle.Stop()
		}
		grouped = len(batch) > 1
		s.commit(batch)
	}
}

// lingerGap is how long a lingering commit waits for the next call before
// it stops lingering: an eighth of the linger, at least a millisecond.
func lingerGap(linger time.Duration) time.Duration {
	return max(linger/8, time.Millisecond)
}

// insertSQL stores the rows past the retention watermark that are not
// there yet, keeps detection_days in step and returns the new keys.
const insertSQL = `
WITH r AS (
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::int[],
		$7::real[], $8::real[], $9::real[], $10::real[], $11::real[], $12::text[], $13::text[], $14::int[])
		AS r(time_us, device, seq, camera, label, class_id, score, x1, y1, x2, y2, model, model_version, size)
), ins AS (
	INSERT INTO detections (time_us, device, seq, camera, label, class_id, score, x1, y1, x2, y2, model, model_version, size)
	SELECT r.time_us, r.device, r.seq, r.camera, r.label, r.class_id, r.score, r.x1, r.y1, r.x2, r.y2, r.model, r.model_version, r.size
	FROM r, detection_watermark w
	WHERE (r.time_us, r.device COLLATE "C", r.seq) > (w.time_us, w.device, w.seq)
	ON CONFLICT DO NOTHING
	RETURNING time_us, device, seq, size
), days AS (
	INSERT INTO detection_days (day, records, bytes)
	SELECT time_us / 86400000000, count(*), sum(size) FROM ins GROUP BY 1
	ON CONFLICT (day) DO UPDATE SET records = detection_days.records + excluded.records, bytes = detection_days.bytes + excluded.bytes
)
SELECT device, seq FROM ins`

type devSeq struct {
	device string
	seq    uint64
}

// columns are the unnest arrays of one commit.
type columns struct {
	time, seq                              []int64
	device, camera, label, model, modelVer []string
	class, size                            []int32
	score, x1, y1, x2, y2                  []float32
	owner                                  map[devSeq]*ingestReq // first request to carry each key
}

func (c *columns) add(r *ingestReq, e *api.Event) {
	k := devSeq{r.device, e.Seq}
	if _, dup := c.owner[k]; dup {
		return
	}
	c.owner[k] = r
	c.time = append(c.time, int64(timeKey(e.Time)))
	c.device = append(c.device, r.device)
	c.seq = append(c.seq, int64(e.Seq))
	c.camera = append(c.camera, e.CameraID)
	c.label = append(c.label, e.Label)
	c.class = append(c.class, int32(e.ClassID))
	c.score = append(c.score, e.Score)
	c.x1, c.y1, c.x2, c.y2 = append(c.x1, e.Box[0]), append(c.y1, e.Box[1]), append(c.x2, e.Box[2]), append(c.y2, e.Box[3])
	c.model = append(c.model, e.Model)
	c.modelVer = append(c.modelVer, e.ModelVersion)
	c.size = append(c.size, int32(len(encodeValue(e))))
}

func (s *Postgres) commit(batch []*ingestReq) {
	start := time.Now()
	// Rows go in primary key order: two replicas storing the same resent
	// events then wait for each other in one order and never deadlock.
	// The sort is stable, so the first call carrying a key still owns it.
	type row struct {
		r *ingestReq
		e *api.Event
	}
	var rows []row
	for _, r := range batch {
		for i := range r.events {
			rows = append(rows, row{r, &r.events[i]})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(timeKey(a.e.Time), timeKey(b.e.Time)), strings.Compare(a.r.device, b.r.device), cmp.Compare(int64(a.e.Seq), int64(b.e.Seq))) // as stored: bigint
	})
	c := &columns{owner: make(map[devSeq]*ingestReq, len(rows))}
	ev := &eventColumns{}
	for _, w := range rows {
		if !w.e.IsAnalytics() {
			c.add(w.r, w.e)
		} else if k := (devSeq{w.r.device, w.e.Seq}); c.owner[k] == nil {
			c.owner[k] = w.r
			ev.add(w.r.device, w.e)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.CommitTimeout)
	defer cancel()
	newKeys, err := s.insert(ctx, c)
	if err == nil {
		err = s.insertEvents(ctx, ev, newKeys)
	}
	var stored, dups, nbytes, detStored uint64
	for _, r := range batch {
		if err != nil {
			r.done(Result{}, fmt.Errorf("store: ingest: %w", err))
			continue
		}
		var res Result
		for i := range r.events {
			k := devSeq{r.device, r.events[i].Seq}
			if c.owner[k] == r && newKeys[k] {
				res.Stored++
				if !r.events[i].IsAnalytics() {
					detStored++
					nbytes += uint64(len(encodeValue(&r.events[i])))
				}
				delete(newKeys, k) // a repeated seq within one call is a duplicate
			} else {
				res.Duplicates++
			}
		}
		stored += uint64(res.Stored)
		dups += uint64(res.Duplicates)
		r.done(res, nil)
	}
	if err == nil {
		s.commits.Add(1)
		s.calls.Add(uint64(len(batch)))
		s.stored.Add(stored)
		s.dups.Add(dups)
		s.commitNanos.Add(uint64(time.Since(start)))
		s.records.Add(detStored) // records and bytes count detections, as detection_days does
		s.recordsBytes.Add(nbytes)
	}
}

func (s *Postgres) insert(ctx context.Context, c *columns) (map[devSeq]bool, error) {
	days := map[int64]bool{}
	for _, t := range c.time {
		days[dayOf(t)] = true
	}
	now := s.opt.Now()
	if err := s.parts.ensure(ctx, s.pool, s.log, s.parts.wanted(days, now), now); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, insertSQL, c.time, c.device, c.seq, c.camera, c.label, c.class,
		c.score, c.x1, c.y1, c.x2, c.y2, c.model, c.modelVer, c.size)
	if err != nil {
		return nil, err
	}
	newKeys := make(map[devSeq]bool, len(c.time))
	var k devSeq
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&k.device, &seq}, func() error {
		k.seq = uint64(seq)
		newKeys[k] = true
		return nil
	})
	return newKeys, err
}

// Stats returns running totals of this process's commits (the bbolt page
// figures stay zero). Records and RecordsBytes count the whole database as
// of the last Open or Retain, plus this process's commits since.
func (s *Postgres) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Calls: s.calls.Load(), Stored: s.stored.Load(),
		Duplicates: s.dups.Load(), CommitNanos: s.commitNanos.Load(),
		Records: s.records.Load(), RecordsBytes: s.recordsBytes.Load()}
}

// loadTotals reads the database's record and byte totals.
func (s *Postgres) loadTotals(ctx context.Context) error {
	var n, b int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(records), 0), coalesce(sum(bytes), 0) FROM detection_days`).Scan(&n, &b); err != nil {
		return fmt.Errorf("store: totals: %w", err)
	}
	s.records.Store(uint64(max(n, 0)))
	s.recordsBytes.Store(uint64(max(b, 0)))
	return nil
}

// Close commits queued calls and stops; it does not close the pool. It is safe to call twice.
func (s *Postgres) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		s.wg.Wait()
	})
	return nil
}

func (s *Postgres) check() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// isCode reports whether err is a PostgreSQL error with the given SQLSTATE.
func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}
