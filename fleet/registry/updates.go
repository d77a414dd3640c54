package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// updateReq is one Postgres.update waiting for its commit.
type updateReq struct {
	id   string
	fn   func(d *Device, now time.Time) *Point
	err  error
	done chan struct{}
}

// maxUpdateBatch caps the updates one transaction groups.
const maxUpdateBatch = 1000

// updateLinger is how long a batch waits for more updates when the one
// before it grouped several (updates are arriving together) and only
// telemetry is waiting: telemetry at 5,000 devices is 500 reports a
// second, which without it went mostly one or two to a transaction (five
// round trips and a commit each: most of the commits PostgreSQL made per
// detection batch). State and job reports end the wait at once: a job
// report held back would let the device's next report overtake it (the
// handlers of one device's messages run concurrently).
const updateLinger = 20 * time.Millisecond

// groupCommit runs concurrent requests in batches: while one batch
// commits, the next requests queue and go together in the next one. A
// device reporting state, telemetry and job status at 5,000 devices is
// hundreds of updates a second: one transaction (and one WAL flush) each
// was most of the registry's cost in fleetd and in PostgreSQL.
type groupCommit struct {
	linger  time.Duration // see updateLinger; 0 never waits
	mu      sync.Mutex
	queue   []*updateReq
	running bool          // a drain goroutine is committing
	urgent  chan struct{} // cap 1: an update that must not wait is queued
}

// run queues req, makes sure a goroutine commits the queue, and waits for
// req's batch. An urgent req ends a linger at once.
func (g *groupCommit) run(req *updateReq, urgent bool, commit func([]*updateReq)) error {
	req.done = make(chan struct{})
	g.mu.Lock()
	g.queue = append(g.queue, req)
	if urgent && g.urgent != nil {
		select {
		case g.urgent <- struct{}{}:
		default:
		}
	}
	if !g.running {
		g.running = true
		go g.drain(commit)
	}
	g.mu.Unlock()
	<-req.done
	return req.err
}

// drain commits batches until the queue is empty. commit must close every
// request's done.
func (g *groupCommit) drain(commit func([]*updateReq)) {
	grouped := false // the last batch had several updates
	var t *time.Timer
	for {
		if grouped && g.linger > 0 {
			// Let the next telemetry gather, unless an urgent update is queued.
			if t == nil {
				t = time.NewTimer(g.linger)
			} else {
				t.Reset(g.linger)
			}
			select {
			case <-t.C:
			case <-g.urgent:
				t.Stop() // since Go 1.23 a stopped timer delivers no stale tick
			}
		}
		g.mu.Lock()
		n := min(len(g.queue), maxUpdateBatch)
		if n == 0 {
			g.running, g.queue = false, nil
			g.mu.Unlock()
			return
		}
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		grouped = n > 1
		commit(batch)
	}
}

// updState is one device's row while a batch of updates applies to it.
type updState struct {
	d       Device
	last    *Point
	lastRaw []byte // last as stored, until an update replaces it
	det     int64  // device_counts.detections
	err     error  // its stored document does not decode: its updates fail
}

// commitUpdates applies a batch of updates in one transaction that holds
// their devices' rows, then updates the cache and answers every request.
func (r *Postgres) commitUpdates(batch []*updateReq) {
	now := r.now()
	ctx, cancel := context.WithTimeout(context.Background(), r.opt.Timeout)
	defer cancel()
	var states map[string]*updState
	var err error
	for try := 0; try < 3; try++ { // a deadlock with another replica's flush aborts one of the two: again
		err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
			var err error
			states, err = applyUpdates(ctx, tx, batch, now)
			return err
		})
		if !isDeadlock(err) {
			break
		}
	}
	r.mu.Lock()
	for _, req := range batch {
		switch st := states[req.id]; {
		case err != nil:
			req.err = fmt.Errorf("registry: update %s: %w", req.id, err)
		case st.err != nil:
			req.err = fmt.Errorf("registry: update %s: %w", req.id, st.err)
		default:
			e := r.cache[req.id]
			if e == nil {
				e = &pgEntry{rates: map[int64]uint64{}}
				r.cache[req.id] = e
			}
			e.Device, e.partial = st.d, false
			e.Detections = uint64(st.det) // device_counts as of this transaction
			if st.last != nil {
				e.last, e.hasLast = *st.last, true
			}
		}
	}
	r.mu.Unlock()
	for _, req := range batch {
		close(req.done)
	}
}

// applyUpdates locks the batch's devices (in id order, as every replica
// does, so two batches cannot deadlock), applies the updates in the order
// they came and writes the devices and the new history points back.
func applyUpdates(ctx context.Context, tx pgx.Tx, batch []*updateReq, now time.Time) (map[string]*updState, error) {
	ids := make([]string, 0, len(batch))
	for _, req := range batch {
		ids = append(ids, req.id)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	states, err := lockDevices(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	var missing []string
	var initial [][]byte
	for _, id := range ids {
		if states[id] == nil {
			doc, _ := json.Marshal(&Device{ID: id, FirstSeen: now})
			missing, initial = append(missing, id), append(initial, doc)
		}
	}
	if len(missing) > 0 {
		// New devices: create their rows first, so that an update on
		// another replica creating the same device waits for this one
		// (or this one for it) instead of overwriting it.
		rows, err := tx.Query(ctx, `INSERT INTO devices (id, doc) SELECT * FROM unnest($1::text[], $2::jsonb[])
			ON CONFLICT (id) DO NOTHING RETURNING id`, missing, initial)
		if err != nil {
			return nil, err
		}
		created, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		for _, id := range created {
			states[id] = &updState{d: Device{ID: id, FirstSeen: now}}
		}
		if len(created) < len(missing) { // created meanwhile by another transaction, now committed
			others, err := lockDevices(ctx, tx, missing)
			if err != nil {
				return nil, err
			}
			for id, st := range others {
				if states[id] == nil {
					states[id] = st
				}
			}
		}
	}
	type teleKey struct {
		id string
		t  time.Time
	}
	points := map[teleKey]*Point{} // one per (device, time): a later one replaces it, as ON CONFLICT would
	for _, req := range batch {
		st := states[req.id]
		if st == nil {
			return nil, fmt.Errorf("device %s: row neither found nor created", req.id)
		}
		if st.err != nil {
			continue
		}
		st.d.LastSeen = now
		if p := req.fn(&st.d, now); p != nil {
			st.last, st.lastRaw = p, nil
			points[teleKey{req.id, p.Time}] = p
		}
		st.d.Health, st.d.Detections, st.d.DetectionsPerMin = nil, 0, 0
	}
	// The devices first, in id order: from then on this transaction holds
	// every row it writes below, so the history rows cannot deadlock either.
	var docs, lasts [][]byte
	var upd []string
	for _, id := range ids {
		st := states[id]
		if st.err != nil {
			continue
		}
		docb, err := json.Marshal(&st.d)
		if err != nil {
			return nil, err
		}
		lb := st.lastRaw
		if lb == nil && st.last != nil {
			lb, _ = json.Marshal(st.last)
		}
		upd, docs, lasts = append(upd, id), append(docs, docb), append(lasts, lb)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO devices (id, doc, last_point)
		SELECT * FROM unnest($1::text[], $2::jsonb[], $3::jsonb[])
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, last_point = excluded.last_point`, upd, docs, lasts); err != nil {
		return nil, err
	}
	if len(points) == 0 {
		return states, nil
	}
	keys := slices.SortedFunc(maps.Keys(points), func(x, y teleKey) int {
		return cmp.Or(strings.Compare(x.id, y.id), x.t.Compare(y.t))
	})
	devs, times, pts := make([]string, len(keys)), make([]time.Time, len(keys)), make([][]byte, len(keys))
	for i, k := range keys {
		devs[i], times[i] = k.id, k.t
		pts[i], _ = json.Marshal(points[k])
	}
	_, err = tx.Exec(ctx, `INSERT INTO device_telemetry (device, time, point)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::jsonb[])
		ON CONFLICT (device, time) DO UPDATE SET point = excluded.point`, devs, times, pts)
	return states, err
}

// lockDevices reads and locks the rows of ids (sorted) that exist.
func lockDevices(ctx context.Context, tx pgx.Tx, ids []string) (map[string]*updState, error) {
	states := make(map[string]*updState, len(ids))
	rows, err := tx.Query(ctx, `SELECT d.id, d.doc, d.last_point, coalesce(c.detections, 0)
		FROM devices d LEFT JOIN device_counts c ON c.id = d.id
		WHERE d.id = ANY($1) ORDER BY d.id FOR UPDATE OF d`, ids)
	if err != nil {
		return nil, err
	}
	var id string
	var doc, lastb []byte
	var det int64
	_, err = pgx.ForEachRow(rows, []any{&id, &doc, &lastb, &det}, func() error {
		st := &updState{det: det}
		if err := json.Unmarshal(doc, &st.d); err != nil {
			st.err = err
		} else if lastb != nil {
			st.last, st.lastRaw = new(Point), lastb
			if err := json.Unmarshal(lastb, st.last); err != nil {
				st.err = err
			}
		}
		states[id] = st
		return nil
	})
	return states, err
}

// isDeadlock reports whether err is PostgreSQL's deadlock_detected.
func isDeadlock(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40P01"
}
