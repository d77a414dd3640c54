package analytics

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"edgefleet/agent/track"
	"edgefleet/fleet/api"
)

// FuzzCounter drives the counter with random detection streams through the
// real tracker: no panic, every event valid, a track counts at most once
// per line and direction, zone occupancy never negative and back to zero
// once every track has ended.
func FuzzCounter(f *testing.F) {
	f.Add(uint64(1), uint8(8), uint8(100))
	f.Add(uint64(9), uint8(40), uint8(30))
	f.Fuzz(func(t *testing.T, seed uint64, n, frames uint8) {
		rng := rand.New(rand.NewPCG(seed, 1))
		pt := func() Point { return Point{rng.Float64(), rng.Float64()} }
		cfg := Config{
			Lines: []Line{{ID: "a", A: pt(), B: pt()}, {ID: "b", A: Point{0.5, 1}, B: Point{0.5, 0}, Classes: map[string]bool{"1": true}}},
			Zones: []Zone{{ID: "z", Polygon: []Point{{0.2, 0.2}, {0.8, 0.2}, {0.8, 0.8}, {0.2, 0.8}}, MinDwell: time.Duration(rng.IntN(3)) * time.Second}},
		}
		if rng.IntN(2) == 0 {
			cfg.Anchor = AnchorCenter
		}
		tr := track.New(track.Config{Buffer: 1 + rng.IntN(5)})
		c := New(cfg)
		label := func(i int) string { return fmt.Sprint(i) }
		// objects: random walkers, so tracks live for a while
		type obj struct{ x, y, vx, vy float32 }
		objs := make([]obj, int(n)%30+1)
		for i := range objs {
			objs[i] = obj{rng.Float32() * 640, rng.Float32() * 480, rng.Float32()*20 - 10, rng.Float32()*20 - 10}
		}
		counted := map[string]bool{}
		check := func(events []api.Event) {
			for _, e := range events {
				if err := e.ValidateAnalytics(); err != nil {
					t.Fatalf("%+v: %v", e, err)
				}
				if e.Type == api.TypeLineCross {
					k := fmt.Sprint(e.Track.ID, e.Line.Line, e.Line.Direction)
					if counted[k] {
						t.Fatalf("track %d counted twice on %s %s", e.Track.ID, e.Line.Line, e.Line.Direction)
					}
					counted[k] = true
				}
			}
			_, zones := c.Counts()
			for _, z := range zones {
				if z.Present < 0 {
					t.Fatalf("zone occupancy %+v", z)
				}
			}
		}
		for fr := 0; fr < int(frames); fr++ {
			var dets []track.Detection
			for i := range objs {
				o := &objs[i]
				o.x, o.y = o.x+o.vx+rng.Float32()*4-2, o.y+o.vy+rng.Float32()*4-2
				if rng.IntN(10) > 0 {
					dets = append(dets, track.Detection{Box: [4]float32{o.x, o.y, o.x + 40, o.y + 40}, Score: 0.3 + rng.Float32()*0.7, Class: i % 3})
				}
			}
			now := int64(fr) * 200_000
			tr.Update(now, dets)
			check(c.Update(Frame{TimeUs: now, W: 640, H: 480, Tracks: tr.Tracks(), Ended: tr.Ended(), Label: label}, nil))
		}
		tr.EndAll()
		check(c.Update(Frame{TimeUs: int64(frames) * 200_000, Ended: tr.Ended(), Label: label}, nil))
		_, zones := c.Counts()
		for _, z := range zones {
			if z.Present != 0 {
				t.Fatalf("after every track ended, zone occupancy %+v", z)
			}
		}
	})
}
