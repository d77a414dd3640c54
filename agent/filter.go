package agent

import (
	"edgefleet/models"
)

// Filter decides which detections of a camera count. The zero Filter keeps
// everything.
type Filter struct {
	// Region is a polygon in normalized frame coordinates (0..1 of width and
	// height); a detection counts when its box centre is inside. Fewer than
	// three points means the whole frame.
	Region [][2]float64
	// Classes, when not empty, keeps only detections with these labels.
	Classes map[string]bool
	// MinScore drops detections scoring below it.
	MinScore float32
}

// Keep reports whether d, found in a frame of w×h pixels, counts.
func (f *Filter) Keep(d models.Detection, w, h int) bool {
	if d.Score < f.MinScore {
		return false
	}
	if len(f.Classes) > 0 && !f.Classes[d.Label] {
		return false
	}
	if len(f.Region) < 3 || w <= 0 || h <= 0 {
		return true
	}
	cx := float64(d.Box[0]+d.Box[2]) / 2 / float64(w)
	cy := float64(d.Box[1]+d.Box[3]) / 2 / float64(h)
	return inPolygon(f.Region, cx, cy)
}

// inPolygon is the even-odd ray casting test.
func inPolygon(poly [][2]float64, x, y float64) bool {
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		xi, yi := poly[i][0], poly[i][1]
		xj, yj := poly[j][0], poly[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}
