package analytics

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgefleet/agent/track"
	"edgefleet/fleet/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	fw, fh  = 640, 480
	frameUs = 200_000 // 5 fps
)

// mover is one object: its bottom centre moves from `from` to `to`
// (normalised) over frames [start, end), with an optional wobble.
type mover struct {
	start, end int
	from, to   Point
	class      int
	wobble     float64 // amplitude of a ±x oscillation, normalised
}

func (m mover) at(f int) (track.Detection, bool) {
	if f < m.start || f >= m.end {
		return track.Detection{}, false
	}
	k := float64(f-m.start) / float64(max(1, m.end-m.start-1))
	x := m.from[0] + (m.to[0]-m.from[0])*k
	y := m.from[1] + (m.to[1]-m.from[1])*k
	if m.wobble != 0 && f%2 == 1 {
		x += m.wobble
	} else if m.wobble != 0 {
		x -= m.wobble
	}
	cx, by := float32(x*fw), float32(y*fh)
	return track.Detection{Box: [4]float32{cx - 25, by - 50, cx + 25, by}, Score: 0.6 + float32(f%5)*0.05, Class: m.class}, true
}

var labels = []string{"bottle", "person"}

func run(t *testing.T, cfg Config, frames int, movers ...mover) ([]api.Event, *Counter) {
	t.Helper()
	tr := track.New(track.Config{})
	c := New(cfg)
	var out []api.Event
	for f := 0; f < frames; f++ {
		var dets []track.Detection
		for _, m := range movers {
			if d, ok := m.at(f); ok {
				dets = append(dets, d)
			}
		}
		now := int64(1_000_000_000_000 + f*frameUs)
		tr.Update(now, dets)
		out = c.Update(Frame{TimeUs: now, W: fw, H: fh, Tracks: tr.Tracks(), Ended: tr.Ended(),
			Label: func(i int) string { return labels[i] }}, out)
	}
	tr.EndAll()
	out = c.Update(Frame{TimeUs: int64(1_000_000_000_000 + frames*frameUs), W: fw, H: fh, Ended: tr.Ended(),
		Label: func(i int) string { return labels[i] }}, out)
	for i := range out {
		if err := out[i].ValidateAnalytics(); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	return out, c
}

// belt is a vertical line drawn upwards: left to right is "in".
var belt = Line{ID: "exit", A: Point{0.5, 1}, B: Point{0.5, 0}}

var cell = Zone{ID: "cell", Polygon: []Point{{0.3, 0.3}, {0.7, 0.3}, {0.7, 0.9}, {0.3, 0.9}}, MinDwell: 2 * time.Second}

// TestGolden runs scenes through the real tracker and the counter and
// compares the event streams with testdata/<name>.golden (-update rewrites).
func TestGolden(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		frames int
		movers []mover
		lines  []api.LineCount
		zones  []api.ZoneCount
	}{
		{"cross_in", Config{Lines: []Line{belt}}, 60,
			[]mover{{start: 0, end: 40, from: Point{0.1, 0.5}, to: Point{0.9, 0.5}}},
			[]api.LineCount{{Line: "exit", Direction: "in", Label: "bottle", Count: 1}}, nil},
		// One object out and back in: one track (it turns at 0.2), counted
		// once each way.
		{"cross_out_and_back", Config{Lines: []Line{belt}}, 100,
			[]mover{{start: 0, end: 30, from: Point{0.9, 0.5}, to: Point{0.2, 0.5}}, {start: 30, end: 60, from: Point{0.2, 0.5}, to: Point{0.9, 0.5}}},
			[]api.LineCount{{Line: "exit", Direction: "in", Label: "bottle", Count: 1}, {Line: "exit", Direction: "out", Label: "bottle", Count: 1}}, nil},
		// Jitter on the line (±0.005, within the hysteresis) while the
		// object dwells there, then it goes on: one crossing.
		{"jitter_on_line", Config{Lines: []Line{belt}}, 70,
			[]mover{
				{start: 0, end: 10, from: Point{0.3, 0.5}, to: Point{0.5, 0.5}},
				{start: 10, end: 30, from: Point{0.5, 0.5}, to: Point{0.5, 0.5}, wobble: 0.005},
				{start: 30, end: 45, from: Point{0.5, 0.5}, to: Point{0.8, 0.5}},
			},
			[]api.LineCount{{Line: "exit", Direction: "in", Label: "bottle", Count: 1}}, nil},
		// Back and forth across the line: once per direction.
		{"back_and_forth", Config{Lines: []Line{belt}}, 70,
			[]mover{{start: 0, end: 30, from: Point{0.5, 0.5}, to: Point{0.5, 0.5}, wobble: 0.02}},
			[]api.LineCount{{Line: "exit", Direction: "in", Label: "bottle", Count: 1}, {Line: "exit", Direction: "out", Label: "bottle", Count: 1}}, nil},
		// Past the line's end: the segment is not crossed.
		{"beside_the_segment", Config{Lines: []Line{{ID: "short", A: Point{0.5, 0.4}, B: Point{0.5, 0.1}}}}, 60,
			[]mover{{start: 0, end: 40, from: Point{0.1, 0.8}, to: Point{0.9, 0.8}}}, nil, nil},
		{"classes", Config{Lines: []Line{{ID: "exit", A: belt.A, B: belt.B, Classes: map[string]bool{"person": true}}}}, 60,
			[]mover{{start: 0, end: 40, from: Point{0.1, 0.3}, to: Point{0.9, 0.3}}, {start: 0, end: 40, from: Point{0.1, 0.8}, to: Point{0.9, 0.8}, class: 1}},
			[]api.LineCount{{Line: "exit", Direction: "in", Label: "person", Count: 1}}, nil},
		// 4 s in the cell (min dwell 2 s): enter after 2 s, exit with the dwell.
		{"zone_dwell", Config{Zones: []Zone{cell}}, 80,
			[]mover{
				{start: 0, end: 10, from: Point{0.25, 0.6}, to: Point{0.5, 0.6}},
				{start: 10, end: 30, from: Point{0.5, 0.6}, to: Point{0.5, 0.6}},
				{start: 30, end: 40, from: Point{0.5, 0.6}, to: Point{0.75, 0.6}},
			},
			nil, []api.ZoneCount{{Zone: "cell", Label: "bottle", Present: 0, Entered: 1}}},
		// About 2.6 s through the cell, min dwell 5 s: no event.
		{"zone_passing", Config{Zones: []Zone{{ID: "cell", Polygon: cell.Polygon, MinDwell: 5 * time.Second}}}, 50,
			[]mover{{start: 0, end: 20, from: Point{0.2, 0.6}, to: Point{0.8, 0.6}}}, nil, nil},
		// The track ends inside: the exit comes with the track's end.
		{"zone_track_ends_inside", Config{Zones: []Zone{cell}}, 80,
			[]mover{{start: 0, end: 30, from: Point{0.5, 0.6}, to: Point{0.52, 0.6}}},
			nil, []api.ZoneCount{{Zone: "cell", Label: "bottle", Present: 0, Entered: 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events, c := run(t, tc.cfg, tc.frames, tc.movers...)
			var buf bytes.Buffer
			for _, e := range events {
				b, _ := json.Marshal(e)
				buf.Write(b)
				buf.WriteByte('\n')
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("events differ from %s:\n%s", golden, buf.Bytes())
			}
			lines, zones := c.Counts()
			if !equalJSON(lines, tc.lines) || !equalJSON(zones, tc.zones) {
				t.Errorf("counts %+v %+v, want %+v %+v", lines, zones, tc.lines, tc.zones)
			}
		})
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestPathSummary: a long track's path keeps at most MaxPath points, from
// its first to its last.
func TestPathSummary(t *testing.T) {
	for _, n := range []int{1, 5, 16, 17, 33, 100, 1000} {
		var st perTrack
		st.pathEvery = 1
		for i := 0; i < n; i++ {
			st.addPath(Point{float64(i), 0})
		}
		p := st.summary()
		if len(p) > api.MaxPath || len(p) != min(n, api.MaxPath) {
			t.Fatalf("n=%d: %d points", n, len(p))
		}
		if p[0][0] != 0 {
			t.Fatalf("n=%d: first point %v", n, p[0])
		}
		// The last kept point is within one stride of the last frame.
		if last := float64(p[len(p)-1][0]); float64(n-1)-last > float64(st.pathEvery) {
			t.Fatalf("n=%d: last point %v, stride %d", n, last, st.pathEvery)
		}
	}
}

func TestGeometry(t *testing.T) {
	sq := []Point{{0, 0}, {1, 0}, {1, 1}, {0, 1}}
	bow := []Point{{0, 0}, {1, 1}, {1, 0}, {0, 1}}
	if SelfIntersecting(sq) || !SelfIntersecting(bow) {
		t.Fatal("SelfIntersecting: square or bow tie wrong")
	}
	if s := side(Point{0.5, 1}, Point{0.5, 0}, Point{0.8, 0.5}); math.Abs(s-0.3) > 1e-9 {
		t.Fatalf("side = %v, want +0.3 (right of a line drawn upwards)", s)
	}
	if !inPolygon(sq, Point{0.5, 0.5}) || inPolygon(sq, Point{1.5, 0.5}) {
		t.Fatal("inPolygon")
	}
	if d := edgeDistance(sq, Point{0.5, 0.4}); math.Abs(d-0.4) > 1e-9 {
		t.Fatalf("edgeDistance = %v", d)
	}
}
