package migrate_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/database/dbtest"
	"edgefleet/fleet/migrate"
	"edgefleet/fleet/store"
)

// TestMigrateAnalytics: analytics events and their snapshots move from the
// bbolt store to PostgreSQL with every field; a second run copies nothing.
func TestMigrateAnalytics(t *testing.T) {
	db := dbtest.Open(t)
	dir := t.TempDir()
	src, err := store.OpenBolt(filepath.Join(dir, "detections.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UnixMicro()
	var evs []api.Event
	for seq := uint64(1); seq <= 30; seq++ {
		e := api.Event{Seq: seq, CameraID: "cam", Time: now - int64(30-seq)*1e6, Label: "box", Score: 0.5}
		if seq%2 == 0 {
			e.Type, e.V = api.TypeLineCross, 1
			e.Track = &api.TrackInfo{ID: seq, FirstUs: e.Time - 10, LastUs: e.Time, Frames: 3, Path: [][2]float32{{0.25, 0.5}}}
			e.Line = &api.LineCross{Line: "door", Direction: api.DirectionOut}
			e.Snapshot = &api.EventSnapshot{TimeUs: e.Time, Crop: []byte{0xFF, 0xD8, byte(seq)}, Thumb: bytes.Repeat([]byte{byte(seq)}, 500)}
		}
		evs = append(evs, e)
	}
	if _, err := src.Ingest(ctx, "dev-m", evs); err != nil {
		t.Fatal(err)
	}
	want, err := src.QueryEvents(ctx, store.EventQuery{Limit: 100})
	if err != nil || len(want.Events) != 15 {
		t.Fatalf("source events: %d, %v", len(want.Events), err)
	}
	src.Close()

	opt := migrate.Options{PageSize: 4, Logger: slog.New(slog.DiscardHandler)}
	rep, err := migrate.Run(ctx, dir, db.Pool, opt)
	if err != nil || rep.Events != 15 || rep.Snapshots != 30 || rep.Detections != 15 {
		t.Fatalf("first run: %v, %v", rep, err)
	}
	again, err := migrate.Run(ctx, dir, db.Pool, opt)
	if err != nil || again.Events != 0 || again.EventsDuplicates != 15 || again.Detections != 0 {
		t.Fatalf("second run: %v, %v", again, err)
	}
	dst, err := store.OpenPostgres(ctx, db.Pool, store.PostgresOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	got, err := dst.QueryEvents(ctx, store.EventQuery{Limit: 100})
	if err != nil || !reflect.DeepEqual(got.Events, want.Events) {
		t.Fatalf("migrated events:\n got %+v\nwant %+v (%v)", got.Events, want.Events, err)
	}
	for _, e := range evs {
		if e.Snapshot == nil {
			continue
		}
		for part, b := range map[string][]byte{store.PartCrop: e.Snapshot.Crop, store.PartThumb: e.Snapshot.Thumb} {
			if jpeg, err := dst.EventSnapshot(ctx, "dev-m", e.Seq, part); err != nil || !bytes.Equal(jpeg, b) {
				t.Fatalf("snapshot %s of %d: %x, %v", part, e.Seq, jpeg, err)
			}
		}
	}
}
