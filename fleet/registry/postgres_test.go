package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/fleet/api"
	"edgefleet/fleet/database/dbtest"
)

func openPostgres(t *testing.T, pool *pgxpool.Pool, c *clock) *Postgres {
	t.Helper()
	r, err := OpenPostgres(context.Background(), pool, PostgresOptions{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestPostgresReplicas: two replicas on one database answer the same once
// refreshed: devices, detections, rates, health and history; a replica
// opened later (a restart) loads everything.
func TestPostgresReplicas(t *testing.T) {
	pool := dbtest.Open(t).Pool
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	a, b := openPostgres(t, pool, c), openPostgres(t, pool, c)
	ctx := context.Background()
	if err := a.UpdateState(api.State{DeviceID: "cam-1", Online: true, Labels: map[string]string{"site": "s", "line": "2"}, Model: "yolov8n"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		c.t = c.t.Add(10 * time.Second)
		if err := b.UpdateTelemetry(tele("cam-1", float64(i), uint64(i), i != 2, 1)); err != nil {
			t.Fatal(err)
		}
	}
	a.RecordDetections("cam-1", 7)
	b.RecordDetections("cam-1", 5)
	b.RecordDetections("cam-2", 1)
	if err := a.RecordJob(api.JobStatus{DeviceID: "cam-1", JobID: "j1", State: api.JobSucceeded}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Postgres{a, b} {
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*Postgres{a, b} {
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	da, _ := a.Get("cam-1")
	db, ok := b.Get("cam-1")
	if !ok || !reflect.DeepEqual(da, db) {
		t.Fatalf("replicas differ:\n%+v\n%+v", da, db)
	}
	if da.Detections != 12 || da.DetectionsPerMin != 12 || da.LastJob == nil || da.Labels["line"] != "2" ||
		da.Telemetry == nil || len(da.Health) != 1 || da.Health[0] != FlagCameraDown {
		t.Fatalf("device %+v", da)
	}
	if n, on := a.Counts(); n != 2 || on != 1 {
		t.Errorf("Counts = %d, %d; want 2, 1", n, on)
	}
	ha, _ := a.History("cam-1", time.Time{})
	hb, _ := b.History("cam-1", time.Time{})
	if len(ha) != 3 || !reflect.DeepEqual(ha, hb) {
		t.Fatalf("history %+v vs %+v", ha, hb)
	}
	restarted := openPostgres(t, pool, c)
	if d, _ := restarted.Get("cam-1"); !reflect.DeepEqual(d, da) {
		t.Fatalf("after restart:\n%+v\nwant\n%+v", d, da)
	}
	if !reflect.DeepEqual(a.Summarize(), b.Summarize()) {
		t.Errorf("summaries differ: %+v vs %+v", a.Summarize(), b.Summarize())
	}
	// History retention.
	c.t = c.t.Add(3 * time.Hour)
	if err := a.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := b.History("cam-1", time.Time{}); len(h) != 0 {
		t.Errorf("history after trim: %d points", len(h))
	}
}

// TestPostgresConcurrentUpdates: updates arriving together share
// transactions, on two replicas at once, and none is lost: every job
// reported for a device is in its history; two telemetry reports of one
// device in one batch keep one history point per time; a device whose
// stored document does not decode fails alone.
func TestPostgresConcurrentUpdates(t *testing.T) {
	pool := dbtest.Open(t).Pool
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	a, b := openPostgres(t, pool, c), openPostgres(t, pool, c)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO devices (id, doc) VALUES ('bad-doc', '[1]')`); err != nil {
		t.Fatal(err)
	}
	const devices, jobs = 40, 10
	var wg sync.WaitGroup
	errs := make(chan error, devices*jobs*2)
	for d := range devices {
		for j := range jobs {
			r := []*Postgres{a, b}[j%2]
			id := fmt.Sprintf("cam-%d", d)
			wg.Go(func() {
				errs <- r.RecordJob(api.JobStatus{DeviceID: id, JobID: fmt.Sprintf("job-%d", j), State: api.JobSucceeded})
			})
			wg.Go(func() { errs <- r.UpdateTelemetry(tele(id, float64(j), 0, true, uint64(j))) })
		}
	}
	badErr := a.UpdateState(api.State{DeviceID: "bad-doc", Online: true})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if badErr == nil || !strings.Contains(badErr.Error(), "bad-doc") {
		t.Fatalf("update of an undecodable device: %v", badErr)
	}
	for d := range devices {
		id := fmt.Sprintf("cam-%d", d)
		for _, r := range []*Postgres{a, b} {
			r.mu.Lock()
			e := r.cache[id]
			r.mu.Unlock()
			if e == nil {
				t.Fatalf("%s not cached", id)
			}
		}
		var doc []byte
		if err := pool.QueryRow(ctx, `SELECT doc FROM devices WHERE id = $1`, id).Scan(&doc); err != nil {
			t.Fatal(err)
		}
		var dev Device
		if err := json.Unmarshal(doc, &dev); err != nil {
			t.Fatal(err)
		}
		if len(dev.Jobs) != jobs || dev.Telemetry == nil {
			t.Fatalf("%s: %d jobs stored, want %d (telemetry %v)", id, len(dev.Jobs), jobs, dev.Telemetry)
		}
		if h, _ := a.History(id, time.Time{}); len(h) != 1 { // one clock time: one point
			t.Fatalf("%s: %d history points, want 1", id, len(h))
		}
	}
}

// TestPostgresRefreshReadsChanges: after its first refresh a replica
// decodes only the documents written since its last one, sees counts,
// deletions and documents another replica wrote, and misses no write of a
// transaction that was running during a refresh and committed after it.
func TestPostgresRefreshReadsChanges(t *testing.T) {
	pool := dbtest.Open(t).Pool
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	a, b := openPostgres(t, pool, c), openPostgres(t, pool, c)
	ctx := context.Background()
	for i := range 20 {
		if err := a.UpdateState(api.State{DeviceID: fmt.Sprintf("cam-%d", i), Online: true, Model: "yolov8n"}); err != nil {
			t.Fatal(err)
		}
	}
	refresh := func(step string, wantDecoded int) {
		t.Helper()
		b.mu.Lock()
		before := b.decoded
		b.mu.Unlock()
		if err := b.Refresh(ctx); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		b.mu.Lock()
		n := b.decoded - before
		b.mu.Unlock()
		if n != wantDecoded {
			t.Fatalf("%s: the refresh decoded %d documents, want %d", step, n, wantDecoded)
		}
	}
	refresh("first", 20)
	refresh("nothing written", 0)

	if err := a.UpdateState(api.State{DeviceID: "cam-3", Online: true, Model: "yolo11n"}); err != nil {
		t.Fatal(err)
	}
	refresh("one state", 1)
	if d, _ := b.Get("cam-3"); d.Model != "yolo11n" {
		t.Fatalf("cam-3 runs %q on b, want yolo11n", d.Model)
	}

	c.t = c.t.Add(time.Minute)
	a.RecordDetections("cam-4", 5)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	refresh("counts only", 0)
	if d, _ := b.Get("cam-4"); d.Detections != 5 || !d.LastSeen.Equal(c.t) {
		t.Fatalf("cam-4 on b: %d detections, last seen %v; want 5 at %v", d.Detections, d.LastSeen, c.t)
	}

	if _, err := a.Delete("cam-5"); err != nil {
		t.Fatal(err)
	}
	refresh("a deletion", 0)
	if _, ok := b.Get("cam-5"); ok {
		t.Fatal("cam-5, deleted on a, is still on b")
	}

	// A transaction that writes before a refresh and commits after it.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE devices SET doc = jsonb_set(doc, '{model}', '"late"') WHERE id = 'cam-6'`); err != nil {
		t.Fatal(err)
	}
	var xid string
	tx.QueryRow(ctx, `SELECT txid_current()::text`).Scan(&xid)
	println("writer", xid)
	// A later transaction that commits before the refresh: the refresh's
	// snapshot then has newer writes than the one still running.
	if err := a.UpdateState(api.State{DeviceID: "cam-7", Online: false, Model: "yolov8n"}); err != nil {
		t.Fatal(err)
	}
	refresh("a write not committed, a later one committed", 1)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Both again: cam-7's write came after the oldest transaction still
	// running at the last refresh (the one that just committed).
	refresh("that write committed", 2)
	if d, _ := b.Get("cam-6"); d.Model != "late" {
		t.Fatalf("cam-6 runs %q on b, want the late commit's model", d.Model)
	}
	if total, _ := b.Counts(); total != 19 {
		t.Fatalf("b knows %d devices, want 19", total)
	}
}

// TestPostgresRefreshAfterLostEntry: a device this replica dropped from
// its cache while its row stayed (a Delete whose transaction failed) and
// then counted by a flush is read whole again at the next refresh, though
// its row did not change.
func TestPostgresRefreshAfterLostEntry(t *testing.T) {
	pool := dbtest.Open(t).Pool
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	a, b := openPostgres(t, pool, c), openPostgres(t, pool, c)
	ctx := context.Background()
	if err := a.UpdateState(api.State{DeviceID: "cam-1", Online: true, Model: "yolov8n", Labels: map[string]string{"site": "s"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	delete(b.cache, "cam-1") // as Delete does before its transaction
	b.mu.Unlock()
	b.RecordDetections("cam-1", 3)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		d, ok := b.Get("cam-1")
		if !ok || d.Model != "yolov8n" || !d.Online || d.Labels["site"] != "s" || d.Detections != 3 {
			t.Fatalf("cam-1 on b after refresh: %+v (found %v); want its stored state and 3 detections", d, ok)
		}
	}
}

// TestPostgresRefreshKeepsRates: a refresh without rates (Run's, between
// two reads of the rates) keeps this replica's counts, its own flushes
// included; the next full one adds the other replicas'.
func TestPostgresRefreshKeepsRates(t *testing.T) {
	pool := dbtest.Open(t).Pool
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	a, b := openPostgres(t, pool, c), openPostgres(t, pool, c)
	ctx := context.Background()
	a.RecordDetections("cam-1", 7)
	b.RecordDetections("cam-1", 5)
	for _, r := range []*Postgres{a, b} {
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name  string
		rates bool
		want  float64
	}{{"without rates", false, 7}, {"with rates", true, 12}, {"without rates again", false, 12}}
	for _, s := range steps {
		if err := a.refresh(ctx, s.rates); err != nil {
			t.Fatal(err)
		}
		if d, _ := a.Get("cam-1"); d.DetectionsPerMin != s.want || d.Detections != 12 {
			t.Errorf("%s: %v detections, %v a minute; want 12, %v", s.name, d.Detections, d.DetectionsPerMin, s.want)
		}
	}
}
