package server

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/store"
)

// seedEvents stores, for device d1, a detection and 9 analytics events a
// minute apart ending a minute before now: line crossings of "door" (seq
// 2..7, in and out, with a crop), a zone entry and a track end.
func seedEvents(t *testing.T, st store.Store) time.Time {
	t.Helper()
	base := time.Now().Add(-11 * time.Minute).Truncate(10 * time.Minute)
	evs := []api.Event{{Seq: 1, CameraID: "cam0", Time: base.UnixMicro(), Label: "person", Score: 0.9}}
	for seq := uint64(2); seq <= 10; seq++ {
		e := api.Event{Seq: seq, CameraID: "cam0", Time: base.Add(time.Duration(seq) * time.Minute).UnixMicro(), Label: []string{"person", "forklift"}[seq%2],
			Score: 0.8, V: 1, Track: &api.TrackInfo{ID: seq, FirstUs: base.UnixMicro(), LastUs: base.Add(time.Duration(seq) * time.Minute).UnixMicro(), Frames: 9}}
		switch {
		case seq <= 7:
			e.Type, e.Line = api.TypeLineCross, &api.LineCross{Line: "door", Direction: []string{api.DirectionIn, api.DirectionOut}[seq%2]}
			e.Snapshot = &api.EventSnapshot{TimeUs: e.Time, Crop: []byte{0xFF, 0xD8, byte(seq)}}
		case seq == 8:
			e.Type, e.Track, e.Zone = api.TypeZoneEnter, nil, &api.ZoneInfo{Zone: "bay", DwellMs: 100}
		default:
			e.Type = api.TypeTrackEnd
		}
		evs = append(evs, e)
	}
	if _, err := st.Ingest(context.Background(), "d1", evs); err != nil {
		t.Fatal(err)
	}
	return base
}

func TestEventRoutes(t *testing.T) {
	ts, st, _ := setupProvisioned(t, nil)
	base := seedEvents(t, st)
	get := func(path string) (int, []byte, string) {
		resp, b := do(t, ts, path, tok)
		return resp.StatusCode, b, resp.Header.Get("Content-Type")
	}
	// Pages of 4, newest first, analytics events only.
	var seqs []uint64
	next := ""
	for range 5 {
		code, b, _ := get("/api/v1/events?device=d1&limit=4&cursor=" + next)
		var p rest.EventPage
		if code != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("events: %d %s", code, b)
		}
		for _, e := range p.Events {
			seqs = append(seqs, e.Seq)
			if e.Type == api.TypeLineCross && (!e.Crop || e.Thumb || e.Line == nil) {
				t.Fatalf("line crossing %d: %+v", e.Seq, e)
			}
		}
		if next = p.Next; next == "" {
			break
		}
	}
	if fmt.Sprint(seqs) != "[10 9 8 7 6 5 4 3 2]" {
		t.Fatalf("paged events = %v", seqs)
	}
	code, b, _ := get("/api/v1/events?type=line_cross&line=door&label=forklift")
	var p rest.EventPage
	if json.Unmarshal(b, &p); code != 200 || len(p.Events) != 3 {
		t.Fatalf("filtered events: %d %s", code, b)
	}
	// CSV.
	code, b, ct := get("/api/v1/events?format=csv&zone=bay")
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if code != 200 || ct != "text/csv; charset=utf-8" || err != nil || len(rows) != 2 ||
		strings.Join(rows[0], ",") != strings.Join(rest.EventCSVHeader, ",") || rows[1][1] != "8" || rows[1][10] != "bay" || rows[1][11] != "100" {
		t.Fatalf("csv: %d %s %q %v", code, ct, b, err)
	}
	// Snapshots.
	code, b, ct = get("/api/v1/events/d1/3/snapshot?part=crop")
	if code != 200 || ct != "image/jpeg" || !bytes.Equal(b, []byte{0xFF, 0xD8, 3}) {
		t.Fatalf("snapshot: %d %s %x", code, ct, b)
	}
	if code, b, _ = get("/api/v1/events/d1/3/snapshot?part=thumb"); code != 404 || !strings.Contains(string(b), "no thumb snapshot") {
		t.Fatalf("missing thumb: %d %s", code, b)
	}
	// Counts per 5 minutes: seqs 2..7 cross the door at base+2m..base+7m.
	from, to := base.UTC().Format(time.RFC3339), base.Add(10*time.Minute).UTC().Format(time.RFC3339)
	code, b, _ = get("/api/v1/counts?device=d1&bucket=5m&from=" + from + "&to=" + to)
	var c rest.CountPage
	if json.Unmarshal(b, &c); code != 200 || c.Total != 6 || c.Bucket != "5m0s" || len(c.Rows) != 4 {
		t.Fatalf("counts: %d %s", code, b)
	}
	for _, r := range c.Rows {
		if r.Line != "door" || r.Count < 1 || !(r.Start.Equal(base) || r.Start.Equal(base.Add(5*time.Minute))) {
			t.Fatalf("count row %+v", r)
		}
	}
	code, b, _ = get("/api/v1/counts?format=csv&bucket=1h&from=" + from + "&to=" + to)
	if rows, err = csv.NewReader(bytes.NewReader(b)).ReadAll(); code != 200 || err != nil || len(rows) < 2 || strings.Join(rows[0], ",") != "start,line,direction,label,count" {
		t.Fatalf("counts csv: %d %s", code, b)
	}
	// Detections stay detections.
	code, b, _ = get("/api/v1/detections?device=d1")
	var dp rest.Page
	if json.Unmarshal(b, &dp); code != 200 || len(dp.Records) != 1 || dp.Records[0].Seq != 1 {
		t.Fatalf("detections: %d %s", code, b)
	}
}

// TestEventRoutesBadRequests: 400s that name the bad parameter.
func TestEventRoutesBadRequests(t *testing.T) {
	ts, _, _ := setupProvisioned(t, nil)
	tests := []struct{ path, want string }{
		{"/api/v1/events?type=teleport", "type:"},
		{"/api/v1/events?line=a/b", "line:"},
		{"/api/v1/events?zone=a%20b", "zone:"},
		{"/api/v1/events?limit=0", "limit:"},
		{"/api/v1/events?from=yesterday", "from:"},
		{"/api/v1/events?cursor=%21%21", "cursor"},
		{"/api/v1/events?format=xml", "format:"},
		{"/api/v1/events?device=a%20b", "device:"},
		{"/api/v1/events/d1/x/snapshot", "seq:"},
		{"/api/v1/events/d1/1/snapshot?part=full", "part:"},
		{"/api/v1/counts?bucket=soon", "bucket:"},
		{"/api/v1/counts?bucket=-1h", "bucket:"},
		{"/api/v1/counts?line=a%2Fb", "line:"},
		{"/api/v1/counts?to=nope", "to:"},
		{"/api/v1/counts?format=pdf", "format:"},
		{"/api/v1/counts?bucket=1ms&from=-24h", "buckets"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, b := do(t, ts, tt.path, tok)
			var e rest.Error
			if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, tt.want) {
				t.Fatalf("%d %s, want 400 naming %q", resp.StatusCode, b, tt.want)
			}
		})
	}
}

// TestEventRoutesViewer: a viewer reads events, snapshots and counts.
func TestEventRoutesViewer(t *testing.T) {
	f := setupAuth(t)
	for _, path := range []string{"/api/v1/events", "/api/v1/counts", "/api/v1/events/d1/1/snapshot"} {
		code, b := call(t, f.ts.URL, "GET", path, viewerTok, "", nil)
		if code != 200 && code != 404 {
			t.Fatalf("viewer %s: %d %s", path, code, b)
		}
		if code, _ := call(t, f.ts.URL, "GET", path, "", "", nil); code != http.StatusUnauthorized {
			t.Fatalf("no token %s: %d", path, code)
		}
	}
}
