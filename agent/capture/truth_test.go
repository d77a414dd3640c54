package capture

import (
	"testing"

	"edgefleet/fleet/api"
)

// TestSynthCrossings: on the belt (left to right) every object crosses a
// vertical line once, "in" for a line drawn upwards and "out" for one drawn
// downwards; a line above the belt is never crossed.
func TestSynthCrossings(t *testing.T) {
	s := NewSynth(SynthOptions{Width: 320, Height: 240, Seed: 3, Speed: 30})
	lines := []TruthLine{
		{ID: "up", A: [2]float64{0.5, 1}, B: [2]float64{0.5, 0}},
		{ID: "down", A: [2]float64{0.25, 0}, B: [2]float64{0.25, 1}},
		{ID: "above", A: [2]float64{0.7, 0}, B: [2]float64{0.7, 0.1}},
	}
	seen := map[string]map[int]string{"up": {}, "down": {}, "above": {}}
	for n := 0; n < 200; n++ {
		for _, c := range s.Crossings(n, lines) {
			if c.Frame != n {
				t.Fatalf("crossing %+v reported at frame %d", c, n)
			}
			if _, twice := seen[c.Line][c.Object]; twice {
				t.Fatalf("object %d crossed %s twice", c.Object, c.Line)
			}
			seen[c.Line][c.Object] = c.Direction
		}
	}
	if len(seen["up"]) < 10 || len(seen["above"]) != 0 {
		t.Fatalf("crossings: %d up, %d above", len(seen["up"]), len(seen["above"]))
	}
	for obj, dir := range seen["up"] {
		if dir != api.DirectionIn {
			t.Errorf("object %d crossed up %s", obj, dir)
		}
	}
	for obj, dir := range seen["down"] {
		if dir != api.DirectionOut {
			t.Errorf("object %d crossed down %s", obj, dir)
		}
	}
}
