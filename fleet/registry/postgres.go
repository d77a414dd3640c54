package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/fleet/api"
)

// PostgresOptions configures OpenPostgres. Zero fields take the defaults.
type PostgresOptions struct {
	Options
	// RefreshEvery is how often Run reloads the devices from the database,
	// so that every replica sees the others' updates; default 1s.
	RefreshEvery time.Duration
	// Timeout bounds each database call; default 5s.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Postgres is a registry in PostgreSQL (schema: fleet/database
// migrations), shared by every fleetd replica on the database. Updates go
// to the database in a transaction (the device rows locked, so replicas do
// not lose each other's updates; concurrent updates share one) and are
// then visible on this replica at once; reads come from a cache that Run
// refreshes from the database every RefreshEvery, so all replicas agree
// within that period (the detection rates, of 10-second resolution,
// within 10 s).
// Detection counts are summed in memory and added to the database every
// FlushEvery. History is read from the database. While the database is
// down, updates fail and reads answer from the last refresh.
type Postgres struct {
	pool *pgxpool.Pool
	opt  PostgresOptions
	now  func() time.Time
	log  *slog.Logger

	mu      sync.Mutex
	closed  bool
	cache   map[string]*pgEntry
	pending map[string]*pendingCount
	// since is the xmin of the last refresh's snapshot (a 64-bit xid):
	// documents written by a transaction at or after it may be new to
	// this replica. 0 reads every document.
	since   int64
	decoded int // documents decoded by refreshes, for tests

	updates groupCommit // of update
}

type pgEntry struct {
	Device
	last    Point
	hasLast bool
	rates   map[int64]uint64 // 10-s slot -> detections, as of the last refresh or flush
	// partial: made by a flush, not read from the database; the next
	// refresh reads the device's document even if its row did not change.
	partial bool
}

type pendingCount struct {
	n     uint64
	slots map[int64]uint64
}

// OpenPostgres opens the registry in pool's database, whose schema
// database.Open has migrated, and loads it.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, opt PostgresOptions) (*Postgres, error) {
	opt.defaults()
	if opt.RefreshEvery <= 0 {
		opt.RefreshEvery = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	r := &Postgres{pool: pool, opt: opt, now: opt.Now, log: opt.Logger, cache: map[string]*pgEntry{}, pending: map[string]*pendingCount{},
		updates: groupCommit{linger: updateLinger, urgent: make(chan struct{}, 1)}}
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// update runs fn on device id inside a transaction that holds its row,
// stores the result and the history point fn returns (if any), and then
// updates the cache. Concurrent updates share one transaction (group
// commit, updates.go): the caller returns once its update is committed.
// Only an update that is not urgent (telemetry) may wait for others.
func (r *Postgres) update(id string, urgent bool, fn func(d *Device, now time.Time) *Point) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return r.updates.run(&updateReq{id: id, fn: fn}, urgent, r.commitUpdates)
}

// UpdateState records a device's (retained) state message.
func (r *Postgres) UpdateState(st api.State) error {
	if err := api.ValidateID(st.DeviceID); err != nil {
		return fmt.Errorf("registry: state: %w", err)
	}
	return r.update(st.DeviceID, true, func(d *Device, _ time.Time) *Point { applyState(d, st); return nil })
}

// UpdateTelemetry records a telemetry report and appends to the history.
func (r *Postgres) UpdateTelemetry(t api.Telemetry) error {
	if err := api.ValidateID(t.DeviceID); err != nil {
		return fmt.Errorf("registry: telemetry: %w", err)
	}
	return r.update(t.DeviceID, false, func(d *Device, now time.Time) *Point {
		p := applyTelemetry(d, t, now)
		return &p
	})
}

// RecordJob records a job status report.
func (r *Postgres) RecordJob(j api.JobStatus) error {
	if err := api.ValidateID(j.DeviceID); err != nil {
		return fmt.Errorf("registry: job: %w", err)
	}
	return r.update(j.DeviceID, true, func(d *Device, _ time.Time) *Point { applyJob(d, j); return nil })
}

// RecordDetections counts n events stored for a device; the counts reach
// the database at the next flush and count on this replica at once.
func (r *Postgres) RecordDetections(device string, n int) {
	if n <= 0 || api.ValidateID(device) != nil {
		return
	}
	slot := r.now().Unix() / 10
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	p := r.pending[device]
	if p == nil {
		p = &pendingCount{slots: map[int64]uint64{}}
		r.pending[device] = p
	}
	p.n += uint64(n)
	p.slots[slot] += uint64(n)
}

// Flush adds the pending detection counts to the database.
func (r *Postgres) Flush(ctx context.Context) error {
	now := r.now()
	r.mu.Lock()
	work := r.pending
	r.pending = map[string]*pendingCount{}
	r.mu.Unlock()
	if len(work) == 0 {
		return nil
	}
	// One statement per table, the rows in id order (as every update
	// locks them, so a flush and another replica's update cannot
	// deadlock). The counts have a table of their own: a flush neither
	// rewrites the devices' documents nor waits on their rows.
	// A device with no row yet (first seen by its detections, or deleted
	// meanwhile on another replica) gets one; ON CONFLICT DO NOTHING
	// neither locks nor rewrites the rows that exist.
	ids := slices.Sorted(maps.Keys(work))
	counts, docs := make([]int64, len(ids)), make([][]byte, len(ids))
	var rateDev []string
	var rateSlot, rateN []int64
	for i, id := range ids {
		p := work[id]
		counts[i] = int64(p.n)
		docs[i], _ = json.Marshal(&Device{ID: id, FirstSeen: now, LastSeen: now})
		for _, slot := range slices.Sorted(maps.Keys(p.slots)) {
			rateDev, rateSlot, rateN = append(rateDev, id), append(rateSlot, slot), append(rateN, int64(p.slots[slot]))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO devices (id, doc) SELECT * FROM unnest($1::text[], $2::jsonb[])
			ON CONFLICT (id) DO NOTHING`, ids, docs); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO device_counts (id, detections, last_seen)
			SELECT u.id, u.n, $3 FROM unnest($1::text[], $2::bigint[]) AS u(id, n)
			ON CONFLICT (id) DO UPDATE SET detections = device_counts.detections + excluded.detections,
				last_seen = greatest(device_counts.last_seen, excluded.last_seen)`, ids, counts, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO device_rates (device, slot, n)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
			ON CONFLICT (device, slot) DO UPDATE SET n = device_rates.n + excluded.n`, rateDev, rateSlot, rateN)
		return err
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, p := range work {
		if err != nil { // keep them for the next flush
			q := r.pending[id]
			if q == nil {
				q = &pendingCount{slots: map[int64]uint64{}}
				r.pending[id] = q
			}
			q.n += p.n
			for s, n := range p.slots {
				q.slots[s] += n
			}
			continue
		}
		e := r.cache[id]
		if e == nil {
			e = &pgEntry{Device: Device{ID: id, FirstSeen: now}, rates: map[int64]uint64{}, partial: true}
			r.cache[id] = e
		}
		e.LastSeen = now
		e.Detections += p.n
		for s, n := range p.slots {
			e.rates[s] += n
		}
	}
	if err != nil {
		return fmt.Errorf("registry: flush: %w", err)
	}
	return nil
}

// Refresh reloads the devices and their rates from the database.
func (r *Postgres) Refresh(ctx context.Context) error { return r.refresh(ctx, true) }

// rateSlot is the rates' resolution (device_rates.slot is unix seconds / 10).
const rateSlot = 10 * time.Second

// refresh is Refresh; without rates it keeps the rates this replica has
// (its own flushes count in them at once) rather than read them again.
// Run reads the rates once per rateSlot, their resolution, and the
// devices every RefreshEvery: the rates are up to six rows a device, and
// read every second they were a third of what a refresh cost PostgreSQL.
//
// Every refresh reads each device's id and counts (so a device deleted
// elsewhere goes), but the document and last point only of the rows
// written since the previous refresh: those whose row version (xmin) is
// not older than the xmin of that refresh's snapshot. Every transaction
// older than that xmin had ended by then, so what it wrote was read then;
// a transaction still running then, or begun since, has an xid at or
// after it, whenever it commits. At 5,000 devices a full read every
// second was half of PostgreSQL's CPU in BenchmarkReplicasSimulated.
func (r *Postgres) refresh(ctx context.Context, rates bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
	defer cancel()
	r.mu.Lock()
	since := r.since
	r.mu.Unlock()
	got, xmin, err := r.readDevices(ctx, since)
	if err != nil {
		return fmt.Errorf("registry: refresh: %w", err)
	}
	cache := make(map[string]*pgEntry, len(got))
	var failed error
	decoded := 0
	for _, g := range got {
		old := g.old
		e := &pgEntry{}
		if !rates && old != nil {
			e.rates = old.rates // shared with the entry it replaces; written under mu only
		}
		if e.rates == nil {
			e.rates = map[int64]uint64{}
		}
		if g.doc == nil { // unchanged, and this replica has it (readDevices)
			e.Device, e.last, e.hasLast = old.Device, old.last, old.hasLast
		} else {
			decoded++
			if err := json.Unmarshal(g.doc, &e.Device); err != nil {
				failed = fmt.Errorf("registry: refresh: device %s: %w", g.id, err)
				if old == nil {
					continue
				}
				// As it was, and read again next time.
				e.Device, e.last, e.hasLast, e.partial = old.Device, old.last, old.hasLast, true
			} else if g.last != nil && json.Unmarshal(g.last, &e.last) == nil {
				e.hasLast = true
			}
		}
		e.Detections = uint64(g.det)
		if g.seen != nil && g.seen.After(e.LastSeen) {
			e.LastSeen = *g.seen
		}
		cache[g.id] = e
	}
	if rates {
		if err := r.readRates(ctx, cache); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.cache = cache
	r.since = xmin
	r.decoded += decoded
	r.mu.Unlock()
	return failed
}

// readDevices reads, in one snapshot, every device's id and counts, and the
// document and last point of those written at or after since (see
// refresh) or that this replica has no document for; each with a copy of
// this replica's entry as it was then (refresh decodes outside mu); xmin
// is the snapshot's.
func (r *Postgres) readDevices(ctx context.Context, since int64) (got []storedDevice, xmin int64, err error) {
	err = pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The first statement takes the transaction's snapshot: this is its xmin.
		if err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin); err != nil {
			return err
		}
		// Every document when there is no earlier snapshot, when xids went
		// back (a restored database) or when the earlier one is too old for
		// 32-bit xid ages to order it; else rows at or after since (mod 2^32).
		from := ""
		if since > 0 && xmin >= since && xmin-since < 1<<30 {
			from = strconv.FormatInt(since%(1<<32), 10)
		}
		rows, err := tx.Query(ctx, `SELECT d.id, d.changed, CASE WHEN d.changed THEN d.doc END, CASE WHEN d.changed THEN d.last_point END,
				coalesce(c.detections, 0), c.last_seen
			FROM (SELECT id, doc, last_point, $1 = '' OR age(xmin) BETWEEN 0 AND age(nullif($1, '')::xid) AS changed FROM devices) d
			LEFT JOIN device_counts c ON c.id = d.id`, from)
		if err != nil {
			return err
		}
		var g storedDevice
		if _, err := pgx.ForEachRow(rows, []any{&g.id, &g.changed, &g.doc, &g.last, &g.det, &g.seen}, func() error {
			got = append(got, g)
			return nil
		}); err != nil {
			return err
		}
		// Unchanged rows this replica has no entry read from the database
		// for (deleted here meanwhile, only counted by a flush, or not
		// decodable last time): read them.
		var missing []string
		idx := map[string]int{}
		r.mu.Lock()
		for i := range got {
			g := &got[i]
			if e := r.cache[g.id]; e != nil {
				c := *e
				g.old = &c
			}
			if !g.changed && (g.old == nil || g.old.partial) {
				missing = append(missing, g.id)
				idx[g.id] = i
			}
		}
		r.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `SELECT id, doc, last_point FROM devices WHERE id = ANY($1)`, missing)
		if err != nil {
			return err
		}
		var id string
		var doc, last []byte
		_, err = pgx.ForEachRow(rows, []any{&id, &doc, &last}, func() error {
			g := &got[idx[id]]
			g.doc, g.last = doc, last
			return nil
		})
		return err
	})
	return got, xmin, err
}

// readRates reads the recent rate slots into the entries of cache.
func (r *Postgres) readRates(ctx context.Context, cache map[string]*pgEntry) error {
	rows, err := r.pool.Query(ctx, `SELECT device, slot, n FROM device_rates WHERE slot > $1`, r.now().Unix()/10-6)
	if err != nil {
		return fmt.Errorf("registry: refresh: %w", err)
	}
	var id string
	var slot, n int64
	_, err = pgx.ForEachRow(rows, []any{&id, &slot, &n}, func() error {
		if e := cache[id]; e != nil {
			e.rates[slot] += uint64(n)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry: refresh: %w", err)
	}
	return nil
}

// storedDevice is a devices row as refresh reads it: doc and last only
// when changed.
type storedDevice struct {
	id        string
	changed   bool
	doc, last []byte
	det       int64
	seen      *time.Time // device_counts.last_seen
	old       *pgEntry   // a copy of this replica's entry when read; nil if none
}

// view returns a copy of e with health and rate computed; under mu.
func (r *Postgres) view(e *pgEntry, now time.Time) Device {
	d := e.Device
	d.Labels = maps.Clone(e.Labels)
	d.Cameras = slices.Clone(e.Cameras)
	d.Jobs = slices.Clone(e.Jobs)
	if e.Telemetry != nil {
		t := *e.Telemetry
		t.Cameras = slices.Clone(t.Cameras)
		d.Telemetry = &t
	}
	slot := now.Unix() / 10
	var sum uint64
	for s, n := range e.rates {
		if s > slot-6 && s <= slot {
			sum += n
		}
	}
	if p := r.pending[e.ID]; p != nil {
		d.Detections += p.n
		for s, n := range p.slots {
			if s > slot-6 && s <= slot {
				sum += n
			}
		}
	}
	d.DetectionsPerMin = float64(sum)
	d.Health = healthOf(r.opt.Options, &d, e.last, e.hasLast, now)
	return d
}

// Counts returns how many devices are known and how many are online.
func (r *Postgres) Counts() (total, online int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.cache {
		if e.Online {
			online++
		}
	}
	return len(r.cache), online
}

// Get returns one device.
func (r *Postgres) Get(id string) (Device, bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.cache[id]
	if !ok {
		return Device{}, false
	}
	return r.view(e, now), true
}

// Summarize groups the fleet by site and line.
func (r *Postgres) Summarize() []Summary { return summarize(r.List(Filter{})) }

// History returns a device's telemetry history since the given time,
// oldest first, at most HistoryPoints, from the database.
func (r *Postgres) History(id string, since time.Time) ([]Point, bool) {
	r.mu.Lock()
	_, known := r.cache[id]
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.opt.Timeout)
	defer cancel()
	rows, err := r.pool.Query(ctx, `SELECT point FROM device_telemetry WHERE device = $1 AND time >= $2
		ORDER BY time DESC LIMIT $3`, id, since, r.opt.HistoryPoints)
	if err != nil {
		r.log.Warn("registry: history", "device", id, "err", err)
		return []Point{}, known
	}
	out := []Point{}
	var b []byte
	_, err = pgx.ForEachRow(rows, []any{&b}, func() error {
		var p Point
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		r.log.Warn("registry: history", "device", id, "err", err)
	}
	slices.Reverse(out)
	return out, known || len(out) > 0
}

// Trim deletes telemetry history older than HistoryAge and rate slots older than ten minutes.
func (r *Postgres) Trim(ctx context.Context) error {
	now := r.now()
	ctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
	defer cancel()
	if _, err := r.pool.Exec(ctx, `DELETE FROM device_telemetry WHERE time < $1`, now.Add(-r.opt.HistoryAge)); err != nil {
		return fmt.Errorf("registry: trim: %w", err)
	}
	if _, err := r.pool.Exec(ctx, `DELETE FROM device_rates WHERE slot < $1`, now.Unix()/10-60); err != nil {
		return fmt.Errorf("registry: trim: %w", err)
	}
	return nil
}

// Run flushes detection counts every FlushEvery, refreshes from the
// database every RefreshEvery (the rates every 10 s: see refresh) and
// trims every minute, until ctx ends; then
// it flushes once more. Database errors are logged and retried, never fatal.
func (r *Postgres) Run(ctx context.Context) error {
	flush, refresh, trim := time.NewTicker(r.opt.FlushEvery), time.NewTicker(r.opt.RefreshEvery), time.NewTicker(time.Minute)
	defer flush.Stop()
	defer refresh.Stop()
	defer trim.Stop()
	ratesEvery, refreshes := max(1, int(rateSlot/r.opt.RefreshEvery)), 0
	for {
		var err error
		select {
		case <-ctx.Done():
			return r.Flush(context.Background())
		case <-flush.C:
			err = r.Flush(ctx)
		case <-refresh.C:
			refreshes++
			err = r.refresh(ctx, refreshes%ratesEvery == 0)
		case <-trim.C:
			err = r.Trim(ctx)
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("registry", "err", err)
		}
	}
}

// Close flushes the pending counts; it does not close the pool. It is safe to call twice.
func (r *Postgres) Close() error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil
	}
	err := r.Flush(context.Background())
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return err
}
