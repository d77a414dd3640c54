package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

// mixed makes events seq from..to, one per second from t0: every third a
// detection, the others analytics events cycling through line crossings
// (in/out on lines "door" and "gate"), zone entries, zone exits and track
// ends; line crossings and track ends carry snapshots.
func mixed(from, to uint64) []api.Event {
	var out []api.Event
	for s := from; s <= to; s++ {
		e := events(s, s)[0]
		if s%3 == 0 {
			out = append(out, e)
			continue
		}
		e.V = api.EventVersion
		e.Track = &api.TrackInfo{ID: s, FirstUs: e.Time - 2e6, LastUs: e.Time, Frames: 40, Path: [][2]float32{{0.1, 0.2}, {0.3, 0.4}}}
		switch s % 4 {
		case 0, 1:
			e.Type = api.TypeLineCross
			e.Line = &api.LineCross{Line: []string{"door", "gate"}[s%2], Direction: []string{api.DirectionIn, api.DirectionOut}[(s/2)%2]}
			e.Snapshot = &api.EventSnapshot{TimeUs: e.Time - 1e6, Crop: snapBytes(s, 'c'), Thumb: snapBytes(s, 't')}
		case 2:
			e.Type, e.Track = api.TypeZoneEnter, nil
			e.Zone = &api.ZoneInfo{Zone: "bay", DwellMs: 500}
		case 3:
			e.Type = api.TypeTrackEnd
			e.Snapshot = &api.EventSnapshot{TimeUs: e.Time, Thumb: snapBytes(s, 't')}
		}
		out = append(out, e)
	}
	return out
}

func snapBytes(seq uint64, part byte) []byte {
	return append([]byte{0xFF, 0xD8, part}, bytes.Repeat([]byte{byte(seq)}, 100+int(seq))...)
}

// wantRecord is what a store should return for an analytics event.
func wantRecord(device string, e api.Event) EventRecord {
	r := EventRecord{Device: device, Event: e}
	if e.Snapshot != nil {
		r.Crop, r.Thumb = len(e.Snapshot.Crop) > 0, len(e.Snapshot.Thumb) > 0
	}
	r.Snapshot = nil
	return r
}

func allEvents(t *testing.T, s Store, q EventQuery) []EventRecord {
	t.Helper()
	var out []EventRecord
	q.Limit = 4
	for i := 0; ; i++ {
		p, err := s.QueryEvents(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Events...)
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
		if i > 1000 {
			t.Fatal("pagination does not end")
		}
	}
}

// TestAnalyticsStored: analytics events are stored with every field exactly
// once on (device, seq), apart from detections, with their snapshots.
func TestAnalyticsStored(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, Retention{})
			ctx := context.Background()
			evs := mixed(1, 24)
			if r, err := s.Ingest(ctx, "dev-a", evs[:12]); err != nil || r != (Result{Stored: 12}) {
				t.Fatalf("first ingest = %+v, %v", r, err)
			}
			if r, err := s.Ingest(ctx, "dev-a", evs); err != nil || r != (Result{Stored: 12, Duplicates: 12}) {
				t.Fatalf("overlapping ingest = %+v, %v", r, err)
			}
			if r, err := s.Ingest(ctx, "dev-b", evs[:3]); err != nil || r.Stored != 3 {
				t.Fatalf("other device = %+v, %v", r, err)
			}
			dets := all(t, s, Query{Device: "dev-a"})
			if len(dets) != 8 {
				t.Fatalf("Query returned %d records, want the 8 detections only", len(dets))
			}
			for _, d := range dets {
				if d.Seq%3 != 0 || d.IsAnalytics() {
					t.Fatalf("Query returned an analytics event: %+v", d)
				}
			}
			got := allEvents(t, s, EventQuery{Device: "dev-a"})
			var want []EventRecord
			for i := len(evs) - 1; i >= 0; i-- {
				if evs[i].IsAnalytics() {
					want = append(want, wantRecord("dev-a", evs[i]))
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("QueryEvents:\n got %+v\nwant %+v", got, want)
			}
			for _, e := range evs {
				for _, part := range []string{PartCrop, PartThumb} {
					b, err := s.EventSnapshot(ctx, "dev-a", e.Seq, part)
					var want []byte
					if e.Snapshot != nil {
						want = map[string][]byte{PartCrop: e.Snapshot.Crop, PartThumb: e.Snapshot.Thumb}[part]
					}
					if len(want) == 0 {
						if !errors.Is(err, ErrNotFound) {
							t.Fatalf("snapshot %s of seq %d: %v, want ErrNotFound", part, e.Seq, err)
						}
					} else if err != nil || !bytes.Equal(b, want) {
						t.Fatalf("snapshot %s of seq %d: %d bytes, %v", part, e.Seq, len(b), err)
					}
				}
			}
			if _, err := s.EventSnapshot(ctx, "dev-a", 1, "full"); !errors.Is(err, ErrBadQuery) {
				t.Fatalf("bad part: %v", err)
			}
		})
	}
}

func TestQueryEventsFilters(t *testing.T) {
	evs := mixed(1, 40)
	seqsOf := func(keep func(e api.Event) bool) []uint64 {
		var out []uint64
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].IsAnalytics() && keep(evs[i]) {
				out = append(out, evs[i].Seq)
			}
		}
		return out
	}
	tests := []struct {
		name string
		q    EventQuery
		keep func(e api.Event) bool
	}{
		{"all", EventQuery{}, func(api.Event) bool { return true }},
		{"type", EventQuery{Type: api.TypeLineCross}, func(e api.Event) bool { return e.Type == api.TypeLineCross }},
		{"line", EventQuery{Line: "door"}, func(e api.Event) bool { return e.Line != nil && e.Line.Line == "door" }},
		{"zone", EventQuery{Zone: "bay"}, func(e api.Event) bool { return e.Zone != nil }},
		{"camera and label", EventQuery{Camera: "cam1", Label: "Person"}, func(e api.Event) bool { return e.CameraID == "cam1" && e.Label == "person" }},
		{"time", EventQuery{From: t0.Add(10 * time.Second), To: t0.Add(20 * time.Second)}, func(e api.Event) bool {
			return e.Time >= t0.Add(10*time.Second).UnixMicro() && e.Time < t0.Add(20*time.Second).UnixMicro()
		}},
		{"no match", EventQuery{Type: api.TypeZoneExit}, func(api.Event) bool { return false }},
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, Retention{})
			if _, err := s.Ingest(context.Background(), "dev-a", evs); err != nil {
				t.Fatal(err)
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var got []uint64
					for _, r := range allEvents(t, s, tt.q) {
						got = append(got, r.Seq)
					}
					if want := seqsOf(tt.keep); fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("got %v, want %v", got, want)
					}
				})
			}
			if _, err := s.QueryEvents(context.Background(), EventQuery{Cursor: "nope!"}); !errors.Is(err, ErrBadCursor) {
				t.Fatalf("bad cursor: %v", err)
			}
		})
	}
}

func TestCountLines(t *testing.T) {
	evs := mixed(1, 40)
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, Retention{})
			ctx := context.Background()
			if _, err := s.Ingest(ctx, "dev-a", evs); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Ingest(ctx, "dev-b", evs[:10]); err != nil {
				t.Fatal(err)
			}
			q := CountQuery{From: t0.Add(5 * time.Second), To: t0.Add(35 * time.Second)}
			for _, tt := range []struct {
				name string
				q    CountQuery
				devs map[string]int // device -> events of it ingested
			}{
				{"all devices", q, map[string]int{"dev-a": 40, "dev-b": 10}},
				{"one device, one line", CountQuery{Device: "dev-b", Line: "gate", From: q.From, To: q.To}, map[string]int{"dev-b": 10}},
			} {
				t.Run(tt.name, func(t *testing.T) {
					want := map[LineCount]int{}
					for dev, n := range tt.devs {
						for _, e := range evs[:n] {
							if e.Type != api.TypeLineCross || e.Time < q.From.UnixMicro() || e.Time >= q.To.UnixMicro() || (tt.q.Device != "" && dev != tt.q.Device) || (tt.q.Line != "" && e.Line.Line != tt.q.Line) {
								continue
							}
							start := t0.Add(time.Duration(e.Time-t0.UnixMicro()) * time.Microsecond / (10 * time.Second) * (10 * time.Second))
							want[LineCount{Start: start, Line: e.Line.Line, Direction: e.Line.Direction, Label: e.Label}]++
						}
					}
					rows, err := s.CountLines(ctx, tt.q, 10*time.Second)
					if err != nil {
						t.Fatal(err)
					}
					total := 0
					for i, r := range rows {
						n := r.Count
						r.Count = 0
						if want[r] != n {
							t.Fatalf("row %+v counts %d, want %d", r, n, want[r])
						}
						delete(want, r)
						total += n
						if i > 0 && rows[i-1].Start.After(r.Start) {
							t.Fatalf("rows not by start: %+v", rows)
						}
					}
					if len(want) != 0 || total == 0 {
						t.Fatalf("missing rows %+v (total %d)", want, total)
					}
				})
			}
			if _, err := s.CountLines(ctx, CountQuery{}, time.Hour); !errors.Is(err, ErrBadQuery) {
				t.Fatalf("count without from/to: %v", err)
			}
		})
	}
}

// TestRetainSnapshots: snapshots expire on their own age and size bounds,
// oldest first, while their events stay; events expire with MaxAge.
func TestRetainSnapshots(t *testing.T) {
	evs := mixed(1, 40) // t0+1s .. t0+40s
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, Retention{MaxAge: time.Hour, SnapshotMaxAge: time.Minute, SnapshotMaxBytes: 2000})
			ctx := context.Background()
			if _, err := s.Ingest(ctx, "dev-a", evs); err != nil {
				t.Fatal(err)
			}
			// At t0+70s the snapshots of events before t0+10s are over a minute old.
			if _, err := s.Retain(ctx, t0.Add(70*time.Second)); err != nil {
				t.Fatal(err)
			}
			var kept int64
			oldestKept := uint64(0)
			for _, e := range evs {
				for _, part := range []string{PartCrop, PartThumb} {
					b, err := s.EventSnapshot(ctx, "dev-a", e.Seq, part)
					if err == nil {
						kept += int64(len(b))
						if oldestKept == 0 {
							oldestKept = e.Seq
						}
						if e.Seq < 10 {
							t.Fatalf("snapshot of seq %d older than SnapshotMaxAge kept", e.Seq)
						}
					} else if oldestKept != 0 && e.Snapshot != nil && (part == PartThumb || len(e.Snapshot.Crop) > 0) {
						t.Fatalf("snapshot %s of seq %d dropped while older seq %d kept", part, e.Seq, oldestKept)
					}
				}
			}
			if kept == 0 || kept > 2000 {
				t.Fatalf("%d snapshot bytes kept, want some and at most 2000", kept)
			}
			page, err := s.QueryEvents(ctx, EventQuery{Limit: MaxLimit})
			if err != nil || len(page.Events) != 27 {
				t.Fatalf("events after snapshot retention: %d, %v; want all 27", len(page.Events), err)
			}
			for _, r := range page.Events {
				if (r.Crop || r.Thumb) && r.Seq < oldestKept {
					t.Fatalf("seq %d still says it has a snapshot", r.Seq)
				}
			}
			if _, err := s.Retain(ctx, t0.Add(time.Hour+20*time.Second)); err != nil {
				t.Fatal(err)
			}
			page, err = s.QueryEvents(ctx, EventQuery{Limit: MaxLimit})
			if err != nil || len(page.Events) == 0 || len(page.Events) >= 27 || page.Events[len(page.Events)-1].Seq < 20 {
				t.Fatalf("events after MaxAge: %d, %v", len(page.Events), err)
			}
		})
	}
}
