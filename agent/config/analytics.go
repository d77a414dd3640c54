package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"edgefleet/agent/analytics"
	"edgefleet/agent/track"
	"edgefleet/fleet/api"
)

// Line is a counting line of a camera:
//
//	lines:
//	  - id: exit
//	    points: [[0.5, 1], [0.5, 0]]   # drawn upwards: left to right is "in"
//	    classes: [bottle]               # empty: every class
//
// Walking from the first point to the second, a track's reference point
// crossing to the right hand side (image coordinates, y down) is "in", to
// the left hand side "out". Each track counts once per line and direction.
type Line struct {
	ID      string       `yaml:"id"`
	Points  [][2]float64 `yaml:"points"`
	Classes []string     `yaml:"classes"`
}

// Zone is a polygon of a camera: zone_enter once a track has been inside
// for min_dwell, zone_exit with the dwell when it leaves or ends.
type Zone struct {
	ID       string        `yaml:"id"`
	Polygon  [][2]float64  `yaml:"polygon"`
	Classes  []string      `yaml:"classes"`
	MinDwell time.Duration `yaml:"min_dwell"`
}

// Tracker tunes a camera's tracker (agent/track); zero fields take the
// defaults shown.
type Tracker struct {
	HighScore     float32 `yaml:"high_score"`      // 0.5: detections matched first
	LowScore      float32 `yaml:"low_score"`       // 0.1: lowest score used at all
	NewTrackScore float32 `yaml:"new_track_score"` // high_score + 0.1: lowest score that starts a track
	MatchIoU      float32 `yaml:"match_iou"`       // 0.2: IoU for the first association
	TrackBuffer   int     `yaml:"track_buffer"`    // 30: frames a lost track is kept
	MinHits       int     `yaml:"min_hits"`        // 2: matches before a track counts
	AnyClass      bool    `yaml:"any_class"`       // false: match only the same class
}

// Detections modes.
const (
	DetectionsAll     = "all"
	DetectionsSampled = "sampled"
	DetectionsOff     = "off"
)

// DefaultDetectionsEvery is the sampling interval of detections: sampled.
const DefaultDetectionsEvery = time.Second

// Tracking reports whether the camera tracks objects: when it has lines or
// zones, a tracker section, or detections other than all. A tracking camera
// sends track_end events (with snapshots), and line and zone events.
func (cam *Camera) Tracking() bool {
	return len(cam.Lines)+len(cam.Zones) > 0 || cam.trackerSet || (cam.Detections != "" && cam.Detections != DetectionsAll)
}

// TrackConfig is the tracker configuration of the camera, defaults applied.
func (cam *Camera) TrackConfig() track.Config {
	t := cam.Tracker
	return track.Config{High: t.HighScore, Low: t.LowScore, NewTrack: t.NewTrackScore, MatchIoU: t.MatchIoU,
		Buffer: t.TrackBuffer, MinHits: t.MinHits, AnyClass: t.AnyClass}.WithDefaults()
}

// Analytics is the lines and zones configuration of the camera.
func (cam *Camera) Analytics() analytics.Config {
	set := func(cl []string) map[string]bool {
		if len(cl) == 0 {
			return nil
		}
		m := map[string]bool{}
		for _, c := range cl {
			m[c] = true
		}
		return m
	}
	a := analytics.Config{Anchor: cam.Anchor}
	for _, l := range cam.Lines {
		a.Lines = append(a.Lines, analytics.Line{ID: l.ID, A: l.Points[0], B: l.Points[1], Classes: set(l.Classes)})
	}
	for _, z := range cam.Zones {
		a.Zones = append(a.Zones, analytics.Zone{ID: z.ID, Polygon: z.Polygon, Classes: set(z.Classes), MinDwell: z.MinDwell})
	}
	return a
}

func (cam *Camera) analyticsDefaults() {
	if cam.Detections == "" {
		cam.Detections = DetectionsAll
	}
	if cam.Detections == DetectionsSampled && cam.DetectionsEvery == 0 {
		cam.DetectionsEvery = DefaultDetectionsEvery
	}
	if cam.Anchor == "" {
		cam.Anchor = analytics.AnchorBottom
	}
	d := cam.TrackConfig()
	t := &cam.Tracker
	t.HighScore, t.LowScore, t.NewTrackScore, t.MatchIoU = d.High, d.Low, d.NewTrack, d.MatchIoU
	t.TrackBuffer, t.MinHits = d.Buffer, d.MinHits
}

// validateAnalytics checks a camera's lines, zones, tracker and detections.
func (cam *Camera) validateAnalytics(p *problems, key string) {
	bad := p.bad
	switch cam.Detections {
	case DetectionsAll, DetectionsOff:
	case DetectionsSampled:
		if cam.DetectionsEvery < 10*time.Millisecond || cam.DetectionsEvery > 24*time.Hour {
			bad(key+".detections_every", "must be 10ms..24h, not %v", cam.DetectionsEvery)
		}
	default:
		bad(key+".detections", "must be all, sampled or off, not %q", cam.Detections)
	}
	if cam.Detections != DetectionsSampled && cam.DetectionsEvery != 0 {
		bad(key+".detections_every", "is for detections: sampled")
	}
	if cam.Anchor != analytics.AnchorBottom && cam.Anchor != analytics.AnchorCenter {
		bad(key+".anchor", "must be bottom or center, not %q", cam.Anchor)
	}
	seen := map[string]int{}
	for i, l := range cam.Lines {
		k := fmt.Sprintf("%s.lines[%d]", key, i)
		checkID(p, k, l.ID, seen, i, "lines")
		checkClasses(p, k, l.Classes)
		if len(l.Points) != 2 {
			bad(k+".points", "a line needs 2 points, not %d", len(l.Points))
			continue
		}
		if !inFrame(p, k+".points", l.Points) {
			continue
		}
		if math.Hypot(l.Points[1][0]-l.Points[0][0], l.Points[1][1]-l.Points[0][1]) < 0.01 {
			bad(k+".points", "degenerate line: its points %v and %v are less than 0.01 apart", l.Points[0], l.Points[1])
		}
	}
	seen = map[string]int{}
	for i, z := range cam.Zones {
		k := fmt.Sprintf("%s.zones[%d]", key, i)
		checkID(p, k, z.ID, seen, i, "zones")
		checkClasses(p, k, z.Classes)
		if z.MinDwell < 0 || z.MinDwell > 24*time.Hour {
			bad(k+".min_dwell", "must be 0..24h, not %v", z.MinDwell)
		}
		if len(z.Polygon) < 3 {
			bad(k+".polygon", "a polygon needs at least 3 points, not %d", len(z.Polygon))
			continue
		}
		if !inFrame(p, k+".polygon", z.Polygon) {
			continue
		}
		if analytics.SelfIntersecting(z.Polygon) {
			bad(k+".polygon", "the polygon's edges cross each other")
		} else if area(z.Polygon) < 1e-4 {
			bad(k+".polygon", "degenerate polygon: its area is %.2g of the frame", area(z.Polygon))
		}
	}
	cam.Tracker.validate(p, key+".tracker")
}

func (t *Tracker) validate(p *problems, key string) {
	score := func(name string, v float32) {
		if !(v > 0 && v < 1) {
			p.bad(key+"."+name, "must be between 0 and 1, not %v", v)
		}
	}
	score("high_score", t.HighScore)
	score("low_score", t.LowScore)
	score("new_track_score", t.NewTrackScore)
	if !(t.MatchIoU > 0 && t.MatchIoU <= 1) {
		p.bad(key+".match_iou", "must be in (0, 1], not %v", t.MatchIoU)
	}
	if t.LowScore >= t.HighScore {
		p.bad(key+".low_score", "must be below high_score (%v), not %v", t.HighScore, t.LowScore)
	}
	if t.NewTrackScore < t.HighScore {
		p.bad(key+".new_track_score", "must be at least high_score (%v), not %v", t.HighScore, t.NewTrackScore)
	}
	if t.TrackBuffer < 1 || t.TrackBuffer > 10000 {
		p.bad(key+".track_buffer", "must be 1..10000 frames, not %d", t.TrackBuffer)
	}
	if t.MinHits < 1 || t.MinHits > 100 {
		p.bad(key+".min_hits", "must be 1..100, not %d", t.MinHits)
	}
}

func checkID(p *problems, key, id string, seen map[string]int, i int, list string) {
	if err := api.ValidateID(id); err != nil {
		p.bad(key+".id", "%v", err)
		return
	}
	if j, dup := seen[id]; dup {
		p.bad(key+".id", "%q already used by %s[%d]", id, list, j)
		return
	}
	seen[id] = i
}

func checkClasses(p *problems, key string, classes []string) {
	seen := map[string]bool{}
	for j, cl := range classes {
		switch {
		case strings.TrimSpace(cl) == "":
			p.bad(fmt.Sprintf("%s.classes[%d]", key, j), "empty class name")
		case seen[cl]:
			p.bad(fmt.Sprintf("%s.classes[%d]", key, j), "%q twice", cl)
		}
		seen[cl] = true
	}
}

// inFrame reports whether every point is within 0..1, naming those that are not.
func inFrame(p *problems, key string, pts [][2]float64) bool {
	ok := true
	for j, pt := range pts {
		if !(pt[0] >= 0 && pt[0] <= 1 && pt[1] >= 0 && pt[1] <= 1) {
			p.bad(fmt.Sprintf("%s[%d]", key, j), "coordinates must be within 0..1 (fractions of the frame), not %v", pt)
			ok = false
		}
	}
	return ok
}

// area is the shoelace area of a simple polygon.
func area(poly [][2]float64) float64 {
	s := 0.0
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		s += poly[j][0]*poly[i][1] - poly[i][0]*poly[j][1]
	}
	return math.Abs(s) / 2
}
