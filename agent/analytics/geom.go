package analytics

import "math"

// Point is a normalised image point: x and y in 0..1 of the frame's width
// and height, y down.
type Point = [2]float64

// Side is the signed distance from p to the line through a and b: positive
// on the right hand side walking from a to b (image coordinates, y down).
func Side(a, b, p Point) float64 { return side(a, b, p) }

func side(a, b, p Point) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	n := math.Hypot(dx, dy)
	if n == 0 {
		return 0
	}
	return (dx*(p[1]-a[1]) - dy*(p[0]-a[0])) / n
}

// Crosses reports whether the segment p→q meets the segment a→b.
func Crosses(a, b, p, q Point) bool { return crosses(a, b, p, q) }

func crosses(a, b, p, q Point) bool {
	d1 := orient(a, b, p)
	d2 := orient(a, b, q)
	d3 := orient(p, q, a)
	d4 := orient(p, q, b)
	return ((d1 > 0) != (d2 > 0) || d1 == 0 || d2 == 0) && ((d3 > 0) != (d4 > 0) || d3 == 0 || d4 == 0)
}

func orient(a, b, c Point) float64 {
	return (b[0]-a[0])*(c[1]-a[1]) - (b[1]-a[1])*(c[0]-a[0])
}

// inPolygon is the even-odd ray casting test.
func inPolygon(poly []Point, p Point) bool {
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		xi, yi := poly[i][0], poly[i][1]
		xj, yj := poly[j][0], poly[j][1]
		if (yi > p[1]) != (yj > p[1]) && p[0] < (xj-xi)*(p[1]-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

// edgeDistance is the distance from p to the polygon's outline.
func edgeDistance(poly []Point, p Point) float64 {
	best := math.Inf(1)
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		best = min(best, segDistance(poly[j], poly[i], p))
	}
	return best
}

func segDistance(a, b, p Point) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = max(0, min(1, ((p[0]-a[0])*dx+(p[1]-a[1])*dy)/l2))
	}
	return math.Hypot(p[0]-a[0]-t*dx, p[1]-a[1]-t*dy)
}

// SelfIntersecting reports whether two non-adjacent edges of a closed
// polygon meet (config validation).
func SelfIntersecting(poly []Point) bool {
	n := len(poly)
	for i := 0; i < n; i++ {
		a, b := poly[i], poly[(i+1)%n]
		for j := i + 1; j < n; j++ {
			if j == i+1 || (i == 0 && j == n-1) {
				continue // adjacent edges share a vertex
			}
			c, d := poly[j], poly[(j+1)%n]
			if crosses(a, b, c, d) {
				return true
			}
		}
	}
	return false
}
