package capture

import (
	"edgefleet/agent/analytics"
	"edgefleet/fleet/api"
)

// Ground truth of the synthetic belt, for tests that score detection,
// tracking and counting together: Objects says where each object is drawn
// in a frame; Crossings says when each object's reference point (the bottom
// centre of its rectangle, as agent/analytics uses by default) crosses a
// line.

// TruthLine is a line in normalised frame coordinates, as a camera's
// lines[] gives it.
type TruthLine struct {
	ID   string
	A, B analytics.Point
}

// Crossing is one object crossing one line between frames n-1 and n.
type Crossing struct {
	Frame, Object int
	Sprite        int // the picture the object shows (-1: a drawn shape)
	Line          string
	Direction     string // api.DirectionIn or api.DirectionOut
}

// Crossings returns the crossings of lines between frames n-1 and n (none
// for n ≤ 0), with the direction convention of agent/analytics.
func (s *Synth) Crossings(n int, lines []TruthLine) []Crossing {
	if n <= 0 {
		return nil
	}
	prev := map[int]analytics.Point{}
	for _, p := range s.Objects(n - 1) {
		prev[p.Index] = s.anchor(p)
	}
	var out []Crossing
	for _, p := range s.Objects(n) {
		a, ok := prev[p.Index]
		if !ok {
			continue
		}
		b := s.anchor(p)
		for _, l := range lines {
			// A point on the line counts as on its right hand side.
			ra, rb := analytics.Side(l.A, l.B, a) >= 0, analytics.Side(l.A, l.B, b) >= 0
			if ra == rb || !analytics.Crosses(l.A, l.B, a, b) {
				continue
			}
			dir := api.DirectionIn
			if !rb {
				dir = api.DirectionOut
			}
			out = append(out, Crossing{Frame: n, Object: p.Index, Sprite: p.Sprite, Line: l.ID, Direction: dir})
		}
	}
	return out
}

func (s *Synth) anchor(p Placed) analytics.Point {
	return analytics.Point{float64(p.Rect.Min.X+p.Rect.Max.X) / 2 / float64(s.opts.Width), float64(p.Rect.Max.Y) / float64(s.opts.Height)}
}
