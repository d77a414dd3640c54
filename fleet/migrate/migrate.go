// Package migrate copies a single-box fleet, fleetd's bbolt files in its
// data dir, into PostgreSQL, for `fleetd migrate --from DATA_DIR --to URL`:
// the registry (devices, their detection counts, telemetry history), the
// detections, the analytics events with the snapshots still held, the artifacts (with their signed manifests), the rollouts
// (jobs and history) and fleetd's signing keys (data_dir/ota/keys.db, or
// the older data_dir/ota/keys/fleet.key; a fleet configured with
// ota.signing_key keeps configuring it).
//
// Everything is written with INSERT ... ON CONFLICT DO NOTHING (detections
// through store.Postgres, idempotent on device and seq), so running it
// again changes nothing, and a migration cut short can simply be run
// again. A device already in the database is left as it is: a fleetd
// running on the database may have updated it since. fleetd must be
// stopped: Run takes the data dir's lock (internal/dirlock), and a
// running fleetd's is refused at once, naming it.
// The registry file is opened read-only, the detection store with
// store.OpenBolt, whose opening transaction changes no record.
package migrate

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"edgefleet/fleet/api"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
	"edgefleet/internal/dirlock"
)

// Options configures Run. The zero value is usable.
type Options struct {
	// PageSize is how many detections are read and written at once; default 10000.
	PageSize int
	// Logger receives progress; nil means slog.Default().
	Logger *slog.Logger
}

// Report says what Run copied.
type Report struct {
	Devices        int   // devices inserted
	DevicesSkipped int   // devices already in the database, left as they were
	Points         int   // telemetry history points inserted
	Detections     int64 // detections inserted
	Duplicates     int64 // detections already in the database
	// Events and EventsDuplicates count analytics events inserted and
	// already there; Snapshots the snapshot parts read and sent with them.
	Events, EventsDuplicates, Snapshots int64
	// Artifacts and Rollouts count what was inserted, the Skipped fields
	// what the database had already.
	Artifacts, ArtifactsSkipped int
	Rollouts, RolloutsSkipped   int
	// KeyID is the data dir's signing key, KeyCopied whether keys were put
	// in the database (else the database had them).
	KeyID     string
	KeyCopied bool
}

func (r Report) String() string {
	s := fmt.Sprintf("devices: %d copied, %d already there; telemetry points: %d; detections: %d copied, %d already there; "+
		"analytics events: %d copied, %d already there (%d snapshots); "+
		"artifacts: %d copied, %d already there; rollouts: %d copied, %d already there",
		r.Devices, r.DevicesSkipped, r.Points, r.Detections, r.Duplicates, r.Events, r.EventsDuplicates, r.Snapshots,
		r.Artifacts, r.ArtifactsSkipped, r.Rollouts, r.RolloutsSkipped)
	switch {
	case r.KeyCopied:
		s += "; signing key " + r.KeyID + " copied"
	case r.KeyID != "":
		s += "; signing key " + r.KeyID + " already there"
	}
	return s
}

// Run copies the fleet in dataDir into pool's database, whose schema
// database.Open has migrated.
func Run(ctx context.Context, dataDir string, pool *pgxpool.Pool, opt Options) (Report, error) {
	if opt.PageSize <= 0 {
		opt.PageSize = 10000
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	lock, err := dirlock.Acquire(dataDir, "fleetd migrate")
	if err != nil {
		return Report{}, fmt.Errorf("migrate: %w", err)
	}
	defer lock.Release()
	var rep Report
	if err := registryInto(ctx, filepath.Join(dataDir, "registry.db"), pool, &rep); err != nil {
		return rep, err
	}
	opt.Logger.Info("migrate: registry copied", "devices", rep.Devices, "devices_skipped", rep.DevicesSkipped, "points", rep.Points)
	if err := detectionsInto(ctx, filepath.Join(dataDir, "detections.db"), pool, opt, &rep); err != nil {
		return rep, err
	}
	opt.Logger.Info("migrate: detections copied", "stored", rep.Detections, "duplicates", rep.Duplicates,
		"analytics_events", rep.Events, "analytics_duplicates", rep.EventsDuplicates, "snapshots", rep.Snapshots)
	if err := otaInto(ctx, filepath.Join(dataDir, "ota"), pool, &rep); err != nil {
		return rep, err
	}
	opt.Logger.Info("migrate: ota copied", "artifacts", rep.Artifacts, "rollouts", rep.Rollouts, "key_id", rep.KeyID, "key_copied", rep.KeyCopied)
	return rep, nil
}

// openBolt opens a bbolt file read-only; a missing file is (nil, nil).
func openBolt(path string) (*bolt.DB, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("migrate: %s is locked: stop the fleetd using it first", path)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: open %s: %w", path, err)
	}
	return db, nil
}

// registryInto copies the devices and telemetry history of the bbolt
// registry (schema: fleet/registry, version 1) in one transaction.
func registryInto(ctx context.Context, path string, pool *pgxpool.Pool, rep *Report) error {
	db, err := openBolt(path)
	if err != nil || db == nil {
		return err
	}
	defer db.Close()
	return db.View(func(btx *bolt.Tx) error {
		if m := btx.Bucket([]byte("meta")); m == nil || string(m.Get([]byte("version"))) != "1" {
			return fmt.Errorf("migrate: %s: not a version 1 registry", path)
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			last, err := copyDevices(ctx, btx, tx, rep)
			if err != nil {
				return err
			}
			return copyHistory(ctx, btx, tx, last, rep)
		})
		if err != nil {
			return fmt.Errorf("migrate: registry: %w", err)
		}
		return nil
	})
}

// copyDevices inserts the devices the database does not have yet and
// returns, for those, their latest history point (nil if none yet).
func copyDevices(ctx context.Context, btx *bolt.Tx, tx pgx.Tx, rep *Report) (map[string]*registry.Point, error) {
	inserted := map[string]*registry.Point{}
	devs := btx.Bucket([]byte("devices"))
	if devs == nil {
		return inserted, nil
	}
	err := devs.ForEach(func(k, v []byte) error {
		var d registry.Device
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("device %q: %w", k, err)
		}
		det := d.Detections
		d.Health, d.Detections, d.DetectionsPerMin = nil, 0, 0
		doc, err := json.Marshal(&d)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO devices (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, d.ID, doc)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.ID, err)
		}
		if tag.RowsAffected() == 0 {
			rep.DevicesSkipped++
			return nil
		}
		if det > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO device_counts (id, detections) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, d.ID, int64(det)); err != nil {
				return fmt.Errorf("device %s: %w", d.ID, err)
			}
		}
		rep.Devices++
		inserted[d.ID] = nil
		return nil
	})
	return inserted, err
}

// copyHistory inserts the history points of the devices copyDevices
// inserted, some thousands per statement, and sets their last_point.
func copyHistory(ctx context.Context, btx *bolt.Tx, tx pgx.Tx, last map[string]*registry.Point, rep *Report) error {
	var ids []string
	var times []time.Time
	var points [][]byte
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, `INSERT INTO device_telemetry (device, time, point)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::jsonb[]) ON CONFLICT DO NOTHING`, ids, times, points)
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		rep.Points += int(tag.RowsAffected())
		ids, times, points = ids[:0], times[:0], points[:0]
		return nil
	}
	if h := btx.Bucket([]byte("history")); h != nil {
		err := h.ForEach(func(k, v []byte) error {
			if len(k) < 10 || k[len(k)-9] != 0 {
				return nil
			}
			id := string(k[:len(k)-9])
			prev, ok := last[id]
			if !ok {
				return nil // not a device this run inserted
			}
			var p registry.Point
			if err := json.Unmarshal(v, &p); err != nil {
				return nil // the registry skips such a point too
			}
			if p.Time.IsZero() {
				p.Time = time.UnixMilli(int64(binary.BigEndian.Uint64(k[len(k)-8:])))
			}
			p = asServed(p)
			pb, _ := json.Marshal(&p)
			ids, times, points = append(ids, id), append(times, p.Time), append(points, pb)
			if prev == nil || !p.Time.Before(prev.Time) {
				last[id] = &p
			}
			if len(ids) >= 5000 {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	for id, p := range last {
		if p == nil {
			continue
		}
		pb, _ := json.Marshal(p)
		if _, err := tx.Exec(ctx, `UPDATE devices SET last_point = $2 WHERE id = $1`, id, pb); err != nil {
			return fmt.Errorf("device %s: %w", id, err)
		}
	}
	return nil
}

// detectionsInto copies every detection of the bbolt store, a page at a
// time, through store.Postgres (its day partitions, its counters).
func detectionsInto(ctx context.Context, path string, pool *pgxpool.Pool, opt Options, rep *Report) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// The store's own reader; a fleetd holding the file makes it time out.
	src, err := store.OpenBolt(path, store.BoltOptions{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("migrate: %w (is a fleetd running on it? stop it first)", err)
	}
	defer src.Close()
	dst, err := store.OpenPostgres(ctx, pool, store.PostgresOptions{Logger: opt.Logger})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer dst.Close()
	q := store.Query{Limit: opt.PageSize}
	for {
		page, err := src.Query(ctx, q)
		if err != nil {
			return fmt.Errorf("migrate: read detections: %w", err)
		}
		if err := writePage(ctx, dst, page.Records, rep); err != nil {
			return err
		}
		if page.Next == "" || len(page.Records) == 0 {
			break
		}
		q.Cursor = page.Next
	}
	return eventsInto(ctx, src, dst, opt, rep)
}

// eventsInto copies the analytics events of the bbolt store and the
// snapshots it still holds, newest first, a page at a time.
func eventsInto(ctx context.Context, src *store.Bolt, dst *store.Postgres, opt Options, rep *Report) error {
	q := store.EventQuery{Limit: opt.PageSize}
	for {
		page, err := src.QueryEvents(ctx, q)
		if err != nil {
			return fmt.Errorf("migrate: read analytics events: %w", err)
		}
		byDev := map[string][]api.Event{}
		for _, r := range page.Events {
			e := r.Event
			for _, part := range []string{store.PartCrop, store.PartThumb} {
				if (part == store.PartCrop && !r.Crop) || (part == store.PartThumb && !r.Thumb) {
					continue
				}
				jpeg, err := src.EventSnapshot(ctx, r.Device, r.Seq, part)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return fmt.Errorf("migrate: read snapshot: %w", err)
				}
				if e.Snapshot == nil {
					e.Snapshot = &api.EventSnapshot{}
				}
				if part == store.PartCrop {
					e.Snapshot.Crop = jpeg
				} else {
					e.Snapshot.Thumb = jpeg
				}
				rep.Snapshots++
			}
			byDev[r.Device] = append(byDev[r.Device], e)
		}
		for dev, evs := range byDev {
			slices.SortFunc(evs, func(a, b api.Event) int { return cmp.Compare(a.Seq, b.Seq) })
			res, err := dst.Ingest(ctx, dev, evs)
			if err != nil {
				return fmt.Errorf("migrate: write analytics events: %w", err)
			}
			rep.Events += int64(res.Stored)
			rep.EventsDuplicates += int64(res.Duplicates)
		}
		if page.Next == "" || len(page.Events) == 0 {
			return nil
		}
		q.Cursor = page.Next
	}
}

// writePage stores one page, grouped by device in increasing seq, and
// waits until it is committed.
func writePage(ctx context.Context, dst *store.Postgres, recs []store.Record, rep *Report) error {
	byDev := map[string][]api.Event{}
	for _, r := range recs {
		byDev[r.Device] = append(byDev[r.Device], r.Event)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for dev, evs := range byDev {
		slices.SortFunc(evs, func(a, b api.Event) int { return cmp.Compare(a.Seq, b.Seq) })
		wg.Add(1)
		done := func(res store.Result, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			rep.Detections += int64(res.Stored)
			rep.Duplicates += int64(res.Duplicates)
		}
		if err := dst.Submit(ctx, dev, evs, done); err != nil {
			done(store.Result{}, err)
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("migrate: write detections: %w", err)
	}
	return nil
}

// asServed rounds a history point as the bbolt registry keeps it in memory
// and serves it (milliseconds, float32), so the API answers the same after
// the migration.
func asServed(p registry.Point) registry.Point {
	p.Time = time.UnixMilli(p.Time.UnixMilli()).UTC()
	p.FPS, p.InferP50Ms, p.InferP99Ms = float64(float32(p.FPS)), float64(float32(p.InferP50Ms)), float64(float32(p.InferP99Ms))
	p.DropRate = float64(float32(p.DropRate))
	p.Dropped, p.SpoolDepth = min(p.Dropped, 1<<32-1), min(p.SpoolDepth, 1<<32-1)
	p.CamerasUp = min(p.CamerasUp, 1<<16-1)
	return p
}
