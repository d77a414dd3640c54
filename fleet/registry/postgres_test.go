package registry

import (
	"context"
	"reflect"
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
