package api

import (
	"fmt"
	"math"
)

// Analytics events: what the agent's tracker, lines and zones make of the
// detections. They travel in the same seq stream as detections (an Event
// whose Type is not TypeDetection), so the spool, the link, the acks and the
// fleet's store give them the same exactly-once delivery: (device, seq) names
// one event, whatever its type.
//
// An Event of type TypeDetection (the zero value "") is one box of one frame,
// as before. The other types carry their payload in Track, Line or Zone, and
// may carry a Snapshot. ClassID, Label, Score and Box describe the tracked
// object (class by vote, best score, box at the best frame).

// Event types.
const (
	TypeDetection = ""           // one box of one frame
	TypeTrackEnd  = "track_end"  // a track left the view: Track
	TypeLineCross = "line_cross" // a track crossed a line: Line (and Track.ID)
	TypeZoneEnter = "zone_enter" // a track stayed in a zone for min_dwell: Zone
	TypeZoneExit  = "zone_exit"  // a track that entered a zone left it: Zone with DwellMs
)

// EventVersion is the payload version of analytics events; an event with a
// newer V is refused with a clear error rather than half understood.
const EventVersion = 1

// Line crossing directions: "in" when the reference point crosses from the
// line's left side to its right (walking from points[0] to points[1], the
// right hand side), "out" the other way.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// Limits on analytics payloads.
const (
	// MaxPath is the most points of a track's path summary.
	MaxPath = 16
	// MaxEventSnapshot is the largest crop or thumbnail JPEG an event carries.
	MaxEventSnapshot = 64 << 10
)

// TrackInfo describes one tracked object.
type TrackInfo struct {
	ID uint64 `json:"id"` // per camera, stable while the object is in view
	// FirstUs and LastUs are the capture times (unix microseconds) of the
	// first and last frames the track was matched in.
	FirstUs int64 `json:"first_us"`
	LastUs  int64 `json:"last_us"`
	Frames  int   `json:"frames"`
	// Path is the reference point (box bottom centre, normalised) at up to
	// MaxPath frames spread over the track's life.
	Path [][2]float32 `json:"path,omitempty"`
}

// LineCross is the payload of a TypeLineCross event.
type LineCross struct {
	Line      string `json:"line"`      // the line's id in the camera's config
	Direction string `json:"direction"` // DirectionIn or DirectionOut
}

// ZoneInfo is the payload of zone events.
type ZoneInfo struct {
	Zone    string `json:"zone"`               // the zone's id in the camera's config
	DwellMs int64  `json:"dwell_ms,omitempty"` // time in the zone (zone_exit; min_dwell at zone_enter)
}

// EventSnapshot is the picture of a track at its best frame: a crop of the
// object and a small full-frame thumbnail with its box drawn, both JPEG and
// each at most MaxEventSnapshot bytes.
type EventSnapshot struct {
	Crop  []byte `json:"crop,omitempty"`
	Thumb []byte `json:"thumb,omitempty"`
	// TimeUs is the capture time of the frame the snapshot shows.
	TimeUs int64 `json:"time_us"`
}

// LineCount is one counter of a camera: crossings of one line in one
// direction by one class since the agent started (telemetry).
type LineCount struct {
	Line      string `json:"line"`
	Direction string `json:"direction"`
	Label     string `json:"label"`
	Count     uint64 `json:"count"`
}

// ZoneCount is a zone's present occupancy and total entries since start.
type ZoneCount struct {
	Zone    string `json:"zone"`
	Label   string `json:"label"`
	Present int    `json:"present"`
	Entered uint64 `json:"entered"`
}

// IsAnalytics reports whether e is an analytics event rather than a detection.
func (e *Event) IsAnalytics() bool { return e.Type != TypeDetection }

// ValidateAnalytics checks the type-specific payload of an event: the
// version, that the payload its type needs is there and well formed, and the
// snapshot limits. Detections pass when they carry no analytics payload.
func (e *Event) ValidateAnalytics() error {
	if e.Type == TypeDetection {
		if e.Track != nil || e.Line != nil || e.Zone != nil || e.Snapshot != nil || e.V != 0 {
			return fmt.Errorf("a detection carries an analytics payload")
		}
		return nil
	}
	if e.V < 1 || e.V > EventVersion {
		return fmt.Errorf("type %s: payload version %d not understood (this build reads 1..%d)", e.Type, e.V, EventVersion)
	}
	if e.Track != nil {
		if len(e.Track.Path) > MaxPath {
			return fmt.Errorf("track.path: %d points, more than %d", len(e.Track.Path), MaxPath)
		}
		for i, p := range e.Track.Path {
			if !finite(p[0]) || !finite(p[1]) {
				return fmt.Errorf("track.path[%d]: not a finite point", i)
			}
		}
		if e.Track.LastUs < e.Track.FirstUs {
			return fmt.Errorf("track: last_us %d before first_us %d", e.Track.LastUs, e.Track.FirstUs)
		}
	}
	switch e.Type {
	case TypeTrackEnd:
		if e.Track == nil {
			return fmt.Errorf("type %s needs track", e.Type)
		}
	case TypeLineCross:
		if e.Line == nil {
			return fmt.Errorf("type %s needs line", e.Type)
		}
		if err := ValidateID(e.Line.Line); err != nil {
			return fmt.Errorf("line.line: %w", err)
		}
		if e.Line.Direction != DirectionIn && e.Line.Direction != DirectionOut {
			return fmt.Errorf("line.direction %q is neither %q nor %q", e.Line.Direction, DirectionIn, DirectionOut)
		}
	case TypeZoneEnter, TypeZoneExit:
		if e.Zone == nil {
			return fmt.Errorf("type %s needs zone", e.Type)
		}
		if err := ValidateID(e.Zone.Zone); err != nil {
			return fmt.Errorf("zone.zone: %w", err)
		}
		if e.Zone.DwellMs < 0 {
			return fmt.Errorf("zone.dwell_ms %d is negative", e.Zone.DwellMs)
		}
	default:
		return fmt.Errorf("unknown event type %q", e.Type)
	}
	if s := e.Snapshot; s != nil {
		if len(s.Crop) > MaxEventSnapshot || len(s.Thumb) > MaxEventSnapshot {
			return fmt.Errorf("snapshot: crop %d or thumb %d bytes over %d", len(s.Crop), len(s.Thumb), MaxEventSnapshot)
		}
	}
	return nil
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }
