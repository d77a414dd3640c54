package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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

	updates groupCommit // of update
}

type pgEntry struct {
	Device
	last    Point
	hasLast bool
	// doc and lastRaw are the stored document and last point Device and
	// last were decoded from by the last Refresh; nil after an update.
	doc, lastRaw []byte
	rates        map[int64]uint64 // 10-s slot -> detections, as of the last refresh or flush
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
	// locks them, so a flush and another replica's update cannot deadlock).
	ids := slices.Sorted(maps.Keys(work))
	docs, counts := make([][]byte, len(ids)), make([]int64, len(ids))
	var rateDev []string
	var rateSlot, rateN []int64
	for i, id := range ids {
		p := work[id]
		docs[i], _ = json.Marshal(&Device{ID: id, FirstSeen: now, LastSeen: now})
		counts[i] = int64(p.n)
		for _, slot := range slices.Sorted(maps.Keys(p.slots)) {
			rateDev, rateSlot, rateN = append(rateDev, id), append(rateSlot, slot), append(rateN, int64(p.slots[slot]))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO devices (id, doc, detections)
			SELECT * FROM unnest($1::text[], $2::jsonb[], $3::bigint[])
			ON CONFLICT (id) DO UPDATE SET detections = devices.detections + excluded.detections,
				doc = jsonb_set(devices.doc, '{last_seen}', excluded.doc->'last_seen')`, ids, docs, counts); err != nil {
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
			e = &pgEntry{Device: Device{ID: id, FirstSeen: now}, rates: map[int64]uint64{}}
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

// Refresh reloads the devices and their rates from the database. A
// device whose stored document is the one this replica decoded last time
// (but for last_seen, which every flush moves) is not decoded again.
func (r *Postgres) Refresh(ctx context.Context) error { return r.refresh(ctx, true) }

// rateSlot is the rates' resolution (device_rates.slot is unix seconds / 10).
const rateSlot = 10 * time.Second

// refresh is Refresh; without rates it keeps the rates this replica has
// (its own flushes count in them at once) rather than read them again.
// Run reads the rates once per rateSlot, their resolution, and the
// devices every RefreshEvery: the rates are up to six rows a device, and
// read every second they were a third of what a refresh cost PostgreSQL.
func (r *Postgres) refresh(ctx context.Context, rates bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
	defer cancel()
	rows, err := r.pool.Query(ctx, `SELECT id, doc, last_point, detections FROM devices`)
	if err != nil {
		return fmt.Errorf("registry: refresh: %w", err)
	}
	var got []storedDevice
	var g storedDevice
	_, err = pgx.ForEachRow(rows, []any{&g.id, &g.doc, &g.last, &g.det}, func() error { got = append(got, g); return nil })
	if err != nil {
		return fmt.Errorf("registry: refresh: %w", err)
	}
	prev := make(map[string]pgEntry, len(got))
	var kept map[string]map[int64]uint64 // without rates: each device's, shared with the old entry (written under mu only)
	if !rates {
		kept = make(map[string]map[int64]uint64, len(got))
	}
	r.mu.Lock()
	for _, g := range got {
		e := r.cache[g.id]
		if e != nil && e.doc != nil {
			prev[g.id] = *e
		}
		if e != nil && kept != nil {
			kept[g.id] = e.rates
		}
	}
	r.mu.Unlock()
	cache := make(map[string]*pgEntry, len(got))
	for _, g := range got {
		e := &pgEntry{rates: kept[g.id], doc: g.doc, lastRaw: g.last}
		if e.rates == nil {
			e.rates = map[int64]uint64{}
		}
		p, known := prev[g.id]
		if !known || !reuseDecoded(&e.Device, &p, g.doc) {
			if err := json.Unmarshal(g.doc, &e.Device); err != nil {
				return fmt.Errorf("registry: refresh: device %s: %w", g.id, err)
			}
		}
		switch {
		case known && g.last != nil && bytes.Equal(p.lastRaw, g.last):
			e.last, e.hasLast = p.last, p.hasLast
		case g.last != nil && json.Unmarshal(g.last, &e.last) == nil:
			e.hasLast = true
		}
		e.Detections = uint64(g.det)
		cache[e.ID] = e
	}
	if rates {
		if err := r.readRates(ctx, cache); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.cache = cache
	r.mu.Unlock()
	return nil
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

// storedDevice is a devices row as Refresh reads it.
type storedDevice struct {
	id        string
	doc, last []byte
	det       int64
}

// lastSeenKey starts the value of Device.LastSeen in a stored document
// (jsonb's text: ": " after each key).
var lastSeenKey = []byte(`"last_seen": "`)

// reuseDecoded sets d to p's device when doc is p's document but for
// last_seen, taking last_seen from doc; it reports whether it did. A key
// inside a string is escaped, so the key appears once unless a nested
// object (labels) has it too: then it answers false.
func reuseDecoded(d *Device, p *pgEntry, doc []byte) bool {
	old := p.doc
	i := bytes.Index(doc, lastSeenKey)
	if i < 0 || i >= len(old) || !bytes.Equal(doc[:i], old[:i]) || bytes.Count(doc, lastSeenKey) != 1 || bytes.Count(old, lastSeenKey) != 1 {
		return false
	}
	vi, vo := i+len(lastSeenKey), i+len(lastSeenKey)
	ei, eo := bytes.IndexByte(doc[vi:], '"'), bytes.IndexByte(old[vo:], '"')
	if ei < 0 || eo < 0 || !bytes.Equal(doc[vi+ei:], old[vo+eo:]) {
		return false
	}
	var seen time.Time
	if seen.UnmarshalJSON(doc[vi-1:vi+ei+1]) != nil {
		return false
	}
	*d = p.Device
	d.LastSeen = seen
	return true
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
