package registry

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/database/dbtest"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func open(t *testing.T, path string, c *clock) *Registry {
	t.Helper()
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.now = c.now
	t.Cleanup(func() { r.Close() })
	return r
}

func tele(id string, fps float64, dropped uint64, up bool, depth uint64) api.Telemetry {
	return api.Telemetry{DeviceID: id, Cameras: []api.CameraStats{{ID: "cam0", Up: up, FPS: fps, Dropped: dropped}}, InferP50Ms: 20, InferP99Ms: 40, SpoolDepth: depth}
}

// impls opens each implementation fresh for one test, on clock c.
var impls = []struct {
	name string
	open func(t *testing.T, c *clock) Devices
}{
	{"bolt", func(t *testing.T, c *clock) Devices { return open(t, filepath.Join(t.TempDir(), "reg.db"), c) }},
	{"postgres", func(t *testing.T, c *clock) Devices { return openPostgres(t, dbtest.Open(t).Pool, c) }},
}

func TestStateAndHealth(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) { testStateAndHealth(t, im.open) })
	}
}

func testStateAndHealth(t *testing.T, openR func(*testing.T, *clock) Devices) {
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	r := openR(t, c)
	st := api.State{DeviceID: "cam-1", Online: true, Time: c.t.UnixMilli(), Labels: map[string]string{"site": "plant-a", "line": "3"}, Engine: "xnnpack", AgentVersion: "1.0"}
	if err := r.UpdateState(st); err != nil {
		t.Fatal(err)
	}
	d, ok := r.Get("cam-1")
	if !ok || !d.Online || d.Labels["site"] != "plant-a" || d.Engine != "xnnpack" {
		t.Fatalf("after state: %+v", d)
	}
	if !slices.Equal(d.Health, []string{FlagStaleTelemetry}) {
		t.Errorf("no telemetry yet: health %v", d.Health)
	}

	steps := []struct {
		name    string
		advance time.Duration
		t       *api.Telemetry
		want    []string
	}{
		{"healthy", 0, ptr(tele("cam-1", 10, 0, true, 5)), nil},
		{"still healthy 10s later", 10 * time.Second, ptr(tele("cam-1", 10, 1, true, 5)), nil},
		{"high drops", 10 * time.Second, ptr(tele("cam-1", 10, 51, true, 5)), []string{FlagHighDropRate}},
		{"camera down", 10 * time.Second, ptr(tele("cam-1", 0, 51, false, 5)), []string{FlagCameraDown}},
		{"spool backlog", 10 * time.Second, ptr(tele("cam-1", 10, 51, true, 20000)), []string{FlagSpoolBacklog}},
		{"stale", 2 * time.Minute, nil, []string{FlagStaleTelemetry, FlagSpoolBacklog}},
	}
	for _, s := range steps {
		c.t = c.t.Add(s.advance)
		if s.t != nil {
			if err := r.UpdateTelemetry(*s.t); err != nil {
				t.Fatal(err)
			}
		}
		d, _ := r.Get("cam-1")
		if s.want == nil {
			s.want = []string{}
		}
		if !slices.Equal(d.Health, s.want) {
			t.Errorf("%s: health %v, want %v", s.name, d.Health, s.want)
		}
	}
	h, _ := r.History("cam-1", time.Time{})
	if len(h) != 5 || h[2].Dropped != 50 {
		t.Fatalf("history = %+v", h)
	}

	// Last will: offline, description kept.
	c.t = c.t.Add(time.Second)
	if err := r.UpdateState(api.State{DeviceID: "cam-1", Online: false, Time: c.t.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	// A late, older online state does not override it.
	r.UpdateState(st)
	d, _ = r.Get("cam-1")
	if d.Online || d.Labels["line"] != "3" || !slices.Equal(d.Health, []string{FlagOffline}) {
		t.Fatalf("after last will: %+v", d)
	}
	if err := r.UpdateState(api.State{DeviceID: "../x"}); err == nil {
		t.Error("bad id accepted")
	}
}

func ptr[T any](v T) *T { return &v }

func TestRateAndSummary(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) { testRateAndSummary(t, im.open) })
	}
}

func testRateAndSummary(t *testing.T, openR func(*testing.T, *clock) Devices) {
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	r := openR(t, c)
	for i, id := range []string{"a1", "a2", "b1"} {
		site := "plant-a"
		if id[0] == 'b' {
			site = "plant-b"
		}
		r.UpdateState(api.State{DeviceID: id, Online: i != 1, Labels: map[string]string{"site": site, "line": "1"}})
	}
	r.RecordDetections("a1", 30)
	c.t = c.t.Add(30 * time.Second)
	r.RecordDetections("a1", 30)
	if d, _ := r.Get("a1"); d.DetectionsPerMin != 60 || d.Detections != 60 {
		t.Fatalf("rate %v total %d", d.DetectionsPerMin, d.Detections)
	}
	c.t = c.t.Add(40 * time.Second) // the first 30 leave the minute
	if d, _ := r.Get("a1"); d.DetectionsPerMin != 30 {
		t.Fatalf("rate after a minute %v, want 30", d.DetectionsPerMin)
	}
	s := r.Summarize()
	if len(s) != 2 || s[0].Site != "plant-a" || s[0].Online != 1 || s[0].Offline != 1 || s[1].Online != 1 {
		t.Fatalf("summary %+v", s)
	}
	if n, on := r.Counts(); n != 3 || on != 2 {
		t.Fatalf("Counts = %d, %d; want 3, 2", n, on)
	}
	on := true
	if l := r.List(Filter{Site: "plant-a", Online: &on}); len(l) != 1 || l[0].ID != "a1" {
		t.Fatalf("filtered list %+v", l)
	}
}

func TestPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reg.db")
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.now = c.now
	r.UpdateState(api.State{DeviceID: "cam-1", Online: true, Labels: map[string]string{"site": "s"}})
	for i := range 5 {
		c.t = c.t.Add(10 * time.Second)
		r.UpdateTelemetry(tele("cam-1", float64(i), 0, true, 1))
	}
	r.RecordJob(api.JobStatus{DeviceID: "cam-1", JobID: "j1", State: api.JobSucceeded})
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(10 * time.Second)
	r.UpdateTelemetry(tele("cam-1", 9, 0, true, 1))
	if err := r.Close(); err != nil { // flushes the last point
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	r2 := open(t, path, c)
	d, ok := r2.Get("cam-1")
	if !ok || d.Labels["site"] != "s" || d.LastJob == nil || d.Telemetry == nil || d.Telemetry.Cameras[0].FPS != 9 {
		t.Fatalf("reloaded %+v", d)
	}
	h, _ := r2.History("cam-1", time.Time{})
	if len(h) != 6 || h[5].FPS != 9 {
		t.Fatalf("reloaded history %+v", h)
	}
	h, _ = r2.History("cam-1", c.t.Add(-15*time.Second))
	if len(h) != 2 {
		t.Fatalf("history since: %d points, want 2", len(h))
	}
}

func TestRing(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		pushes, capacity, want int
	}{{0, 3, 0}, {2, 3, 2}, {3, 3, 3}, {10, 3, 3}, {7, 1, 1}}
	for _, tt := range tests {
		var r ring
		for i := range tt.pushes {
			r.push(Point{Time: t0.Add(time.Duration(i) * time.Second), FPS: float64(i)}, tt.capacity)
		}
		got := r.since(time.Time{})
		if len(got) != tt.want {
			t.Fatalf("%d pushes into %d: %d points", tt.pushes, tt.capacity, len(got))
		}
		for i, p := range got {
			if want := float64(tt.pushes - tt.want + i); p.FPS != want {
				t.Errorf("%d pushes into %d: point %d has fps %v, want %v (oldest first)", tt.pushes, tt.capacity, i, p.FPS, want)
			}
		}
		if last, ok := r.last(); ok != (tt.pushes > 0) || ok && last.FPS != float64(tt.pushes-1) {
			t.Errorf("last = %+v, %v", last, ok)
		}
	}
}

// TestLateTelemetryKeepsVersion: a telemetry report taken before the state
// that announced a new model version (delivered late, or by another
// replica) must not put the device back on the old version.
func TestLateTelemetryKeepsVersion(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
			r := im.open(t, c)
			t0 := c.t.UnixMilli()
			if err := r.UpdateState(api.State{DeviceID: "cam-1", Online: true, Time: t0, Model: "m", ModelVersion: "2"}); err != nil {
				t.Fatal(err)
			}
			late := tele("cam-1", 5, 0, true, 0)
			late.Time, late.Model, late.ModelVersion = t0-10, "m", "1"
			if err := r.UpdateTelemetry(late); err != nil {
				t.Fatal(err)
			}
			if d, _ := r.Get("cam-1"); d.ModelVersion != "2" || d.Telemetry == nil {
				t.Fatalf("after late telemetry: version %q, telemetry %v; want version 2 and the telemetry kept", d.ModelVersion, d.Telemetry)
			}
			newer := tele("cam-1", 5, 0, true, 0)
			newer.Time, newer.Model, newer.ModelVersion = t0+10, "m", "3"
			if err := r.UpdateTelemetry(newer); err != nil {
				t.Fatal(err)
			}
			if d, _ := r.Get("cam-1"); d.ModelVersion != "3" {
				t.Fatalf("after newer telemetry: version %q, want 3", d.ModelVersion)
			}
		})
	}
}
