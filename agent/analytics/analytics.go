// Package analytics turns one camera's tracks into events: line crossings
// (direction-aware, once per line and direction per track, with hysteresis),
// zone entries after a minimum dwell and exits with the dwell, and the end
// of each track with its summary; and it keeps the per-line and per-zone
// counters that telemetry reports.
//
// Positions are a track's reference point (the bottom centre of its box by
// default: where an object stands on a belt or a floor), normalised to 0..1
// of the frame. Only frames where the tracker matched a detection move the
// point; a lost track keeps its last one, so a crossing made while it was
// hidden counts when it is found again on the other side.
//
// Direction: walking along a line from its first point to its second, "in"
// is crossing from the left hand side to the right hand side in image
// coordinates (y down), "out" the other way. A vertical line drawn upwards,
// points [[0.5,1],[0.5,0]], counts a belt moving left to right as "in".
package analytics

import (
	"sort"
	"sync"
	"time"

	"edgefleet/agent/track"
	"edgefleet/fleet/api"
)

// Line is a counting line.
type Line struct {
	ID      string
	A, B    Point
	Classes map[string]bool // labels counted; empty: all
}

// Zone is a polygon region.
type Zone struct {
	ID       string
	Polygon  []Point
	Classes  map[string]bool
	MinDwell time.Duration // time inside before zone_enter
}

// Anchors: the reference point of a box.
const (
	AnchorBottom = "bottom" // bottom centre (default)
	AnchorCenter = "center" // box centre
)

// Config is one camera's lines and zones.
type Config struct {
	Lines  []Line
	Zones  []Zone
	Anchor string // AnchorBottom ("" too) or AnchorCenter
	// Hysteresis is how far (normalised) a point must be from a line or a
	// zone's outline to count as on one side; 0 means 0.01. Jitter within
	// it neither crosses nor leaves.
	Hysteresis float64
}

// Frame is what Update takes: one processed frame of the camera.
type Frame struct {
	TimeUs int64 // capture time, unix microseconds
	W, H   int   // frame size the boxes are in (pixels)
	// Tracks and Ended are the tracker's output for the frame
	// (track.Tracker.Tracks and Ended).
	Tracks, Ended []*track.Track
	// Label names a class id.
	Label func(class int) string
}

// perTrack is what the Counter keeps per tracker slot.
type perTrack struct {
	id        uint64 // the track using the slot; 0: none yet
	bestScore float32
	bestBox   [4]float32
	bestUs    int64
	path      [2 * api.MaxPath][2]float32
	pathN     int
	pathEvery int // keep one point every pathEvery matched frames
	matched   int
	lines     []lineState
	zones     []zoneState
}

type lineState struct {
	side int8 // -1 left, +1 right, 0 not yet known
	last Point
	done [2]bool // counted in, out
}

type zoneState struct {
	inside  bool  // on the inside (past the hysteresis)
	since   int64 // time it came inside
	lastIn  int64 // last time seen inside
	entered bool  // zone_enter sent
	label   string
}

type lineKey struct{ line, dir, label string }
type zoneKey struct{ zone, label string }

// Counter follows one camera's lines and zones. Update is called by one
// goroutine; Counts and Improved may be called concurrently with it
// (Improved only by the Update goroutine).
type Counter struct {
	cfg      Config
	slots    []perTrack
	improved []int

	mu       sync.Mutex
	lineN    map[lineKey]uint64
	zoneIn   map[zoneKey]int
	zoneSeen map[zoneKey]uint64
}

// New returns a Counter for cfg, whose geometry is already validated
// (agent/config).
func New(cfg Config) *Counter {
	if cfg.Hysteresis <= 0 {
		cfg.Hysteresis = 0.01
	}
	return &Counter{cfg: cfg, lineN: map[lineKey]uint64{}, zoneIn: map[zoneKey]int{}, zoneSeen: map[zoneKey]uint64{}}
}

// Active reports whether the counter has lines or zones.
func (c *Counter) Active() bool { return len(c.cfg.Lines)+len(c.cfg.Zones) > 0 }

// Improved returns the slots of the tracks whose best score rose in the last
// Update (their best frame is now): where a snapshot should be taken.
func (c *Counter) Improved() []int { return c.improved }

// Update takes one frame and appends the events it makes to out, in this
// order: line crossings and zone events of matched tracks, then the exits
// and track_end of ended tracks. CameraID, Model and Seq are the caller's.
func (c *Counter) Update(f Frame, out []api.Event) []api.Event {
	c.improved = c.improved[:0]
	for _, t := range f.Tracks {
		st := c.slot(t)
		if t.Det < 0 || t.State != track.Tracked {
			continue
		}
		p := c.anchor(t.Box, f.W, f.H)
		st.addPath(p)
		if t.Score > st.bestScore {
			st.bestScore, st.bestBox, st.bestUs = t.Score, t.Box, f.TimeUs
			c.improved = append(c.improved, t.Slot)
		}
		label := f.Label(t.Class)
		out = c.lines(f, t, st, p, label, out)
		out = c.zones(f, t, st, p, label, out)
	}
	for _, t := range f.Ended {
		st := c.slot(t)
		out = c.end(f, t, st, out)
		st.id = 0
	}
	return out
}

// slot returns the state of t's slot, reset when the slot changed hands.
func (c *Counter) slot(t *track.Track) *perTrack {
	for len(c.slots) <= t.Slot {
		c.slots = append(c.slots, perTrack{
			lines: make([]lineState, len(c.cfg.Lines)),
			zones: make([]zoneState, len(c.cfg.Zones)),
		})
	}
	st := &c.slots[t.Slot]
	if st.id != t.ID {
		lines, zones := st.lines, st.zones
		*st = perTrack{id: t.ID, lines: lines, zones: zones, pathEvery: 1}
		clear(st.lines)
		clear(st.zones)
	}
	return st
}

func (c *Counter) anchor(b [4]float32, w, h int) Point {
	if w <= 0 || h <= 0 {
		return Point{}
	}
	x := float64(b[0]+b[2]) / 2 / float64(w)
	y := float64(b[3]) / float64(h)
	if c.cfg.Anchor == AnchorCenter {
		y = float64(b[1]+b[3]) / 2 / float64(h)
	}
	return Point{x, y}
}

// addPath keeps at most 2·MaxPath points spread evenly over the track's
// matched frames, halving them when full.
func (st *perTrack) addPath(p Point) {
	st.matched++
	if (st.matched-1)%st.pathEvery != 0 {
		return
	}
	if st.pathN == len(st.path) {
		for i := 0; i < st.pathN/2; i++ {
			st.path[i] = st.path[2*i]
		}
		st.pathN /= 2
		st.pathEvery *= 2
		if (st.matched-1)%st.pathEvery != 0 {
			return
		}
	}
	st.path[st.pathN] = [2]float32{float32(p[0]), float32(p[1])}
	st.pathN++
}

// summary returns at most MaxPath of the kept points, evenly chosen, the
// first and the last included.
func (st *perTrack) summary() [][2]float32 {
	n := st.pathN
	if n == 0 {
		return nil
	}
	k := min(n, api.MaxPath)
	out := make([][2]float32, k)
	for i := range out {
		j := 0
		if k > 1 {
			j = i * (n - 1) / (k - 1)
		}
		out[i] = st.path[j]
	}
	return out
}

func allowed(classes map[string]bool, label string) bool {
	return len(classes) == 0 || classes[label]
}

func (c *Counter) lines(f Frame, t *track.Track, st *perTrack, p Point, label string, out []api.Event) []api.Event {
	for i, l := range c.cfg.Lines {
		if !allowed(l.Classes, label) {
			continue
		}
		ls := &st.lines[i]
		d := side(l.A, l.B, p)
		var s int8
		switch {
		case d > c.cfg.Hysteresis:
			s = 1
		case d < -c.cfg.Hysteresis:
			s = -1
		default:
			continue // on the line: wait for a side
		}
		if ls.side != 0 && s != ls.side && crosses(l.A, l.B, ls.last, p) {
			dir, k := api.DirectionIn, 0
			if s < 0 {
				dir, k = api.DirectionOut, 1
			}
			if !ls.done[k] {
				ls.done[k] = true
				c.mu.Lock()
				c.lineN[lineKey{l.ID, dir, label}]++
				c.mu.Unlock()
				e := c.event(f, t, api.TypeLineCross, label)
				e.Line = &api.LineCross{Line: l.ID, Direction: dir}
				e.Track = &api.TrackInfo{ID: t.ID, FirstUs: t.FirstUs, LastUs: t.LastUs, Frames: t.Hits}
				out = append(out, e)
			}
		}
		ls.side, ls.last = s, p
	}
	return out
}

func (c *Counter) zones(f Frame, t *track.Track, st *perTrack, p Point, label string, out []api.Event) []api.Event {
	for i, z := range c.cfg.Zones {
		if !allowed(z.Classes, label) {
			continue
		}
		zs := &st.zones[i]
		in := inPolygon(z.Polygon, p)
		far := edgeDistance(z.Polygon, p) > c.cfg.Hysteresis
		switch {
		case in && far && !zs.inside:
			zs.inside, zs.since = true, f.TimeUs
		case !in && far && zs.inside:
			zs.inside = false
			if zs.entered {
				out = append(out, c.exit(f, t, z, zs, f.TimeUs))
			}
		}
		if !zs.inside {
			continue
		}
		zs.lastIn = f.TimeUs
		if !zs.entered && time.Duration(f.TimeUs-zs.since)*time.Microsecond >= z.MinDwell {
			zs.entered, zs.label = true, label
			c.mu.Lock()
			c.zoneIn[zoneKey{z.ID, label}]++
			c.zoneSeen[zoneKey{z.ID, label}]++
			c.mu.Unlock()
			e := c.event(f, t, api.TypeZoneEnter, label)
			e.Zone = &api.ZoneInfo{Zone: z.ID, DwellMs: (f.TimeUs - zs.since) / 1000}
			e.Track = &api.TrackInfo{ID: t.ID, FirstUs: t.FirstUs, LastUs: t.LastUs, Frames: t.Hits}
			out = append(out, e)
		}
	}
	return out
}

// exit makes a zone_exit event for a track that had entered and takes it off
// the zone's occupancy.
func (c *Counter) exit(f Frame, t *track.Track, z Zone, zs *zoneState, at int64) api.Event {
	zs.entered = false
	c.mu.Lock()
	c.zoneIn[zoneKey{z.ID, zs.label}]--
	c.mu.Unlock()
	e := c.event(f, t, api.TypeZoneExit, zs.label)
	e.Time = at
	if t.Det < 0 { // ended or lost: no detection this frame
		e.Score = t.BestScore
	}
	e.Zone = &api.ZoneInfo{Zone: z.ID, DwellMs: (zs.lastIn - zs.since) / 1000}
	e.Track = &api.TrackInfo{ID: t.ID, FirstUs: t.FirstUs, LastUs: t.LastUs, Frames: t.Hits}
	return e
}

// end makes the zone exits and the track_end of an ended track.
func (c *Counter) end(f Frame, t *track.Track, st *perTrack, out []api.Event) []api.Event {
	for i, z := range c.cfg.Zones {
		if zs := &st.zones[i]; zs.entered {
			out = append(out, c.exit(f, t, z, zs, t.LastUs))
		}
	}
	label := f.Label(t.Class)
	e := c.event(f, t, api.TypeTrackEnd, label)
	e.Time = t.LastUs
	e.Score = t.BestScore
	if st.bestScore > 0 {
		e.Box = st.bestBox
	}
	e.Track = &api.TrackInfo{ID: t.ID, FirstUs: t.FirstUs, LastUs: t.LastUs, Frames: t.Hits, Path: st.summary()}
	return append(out, e)
}

func (c *Counter) event(f Frame, t *track.Track, typ, label string) api.Event {
	return api.Event{Type: typ, V: api.EventVersion, Time: f.TimeUs, ClassID: t.Class, Label: label, Score: t.Score, Box: t.Box}
}

// Best returns the best frame's box, score and time of the track in slot.
func (c *Counter) Best(slot int) (box [4]float32, score float32, timeUs int64) {
	st := &c.slots[slot]
	return st.bestBox, st.bestScore, st.bestUs
}

// Counts returns the line counters (per line, direction and label) and zone
// occupancy (per zone and label), sorted, for telemetry.
func (c *Counter) Counts() ([]api.LineCount, []api.ZoneCount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []api.LineCount
	for k, n := range c.lineN {
		lines = append(lines, api.LineCount{Line: k.line, Direction: k.dir, Label: k.label, Count: n})
	}
	var zones []api.ZoneCount
	for k, n := range c.zoneSeen {
		zones = append(zones, api.ZoneCount{Zone: k.zone, Label: k.label, Present: c.zoneIn[k], Entered: n})
	}
	sort.Slice(lines, func(i, j int) bool {
		a, b := lines[i], lines[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Direction != b.Direction {
			return a.Direction < b.Direction
		}
		return a.Label < b.Label
	})
	sort.Slice(zones, func(i, j int) bool {
		if zones[i].Zone != zones[j].Zone {
			return zones[i].Zone < zones[j].Zone
		}
		return zones[i].Label < zones[j].Label
	})
	return lines, zones
}
