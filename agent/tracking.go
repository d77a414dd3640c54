package agent

import (
	"image"
	"strconv"
	"time"

	"edgefleet/agent/analytics"
	"edgefleet/agent/track"
	"edgefleet/fleet/api"
	"edgefleet/models"
)

// Detections modes of a camera: which raw detections reach the spool.
const (
	DetectionsAll     = "all"     // every detection of every frame ("" too)
	DetectionsSampled = "sampled" // the detections of one frame per Camera.DetectionsEvery
	DetectionsOff     = "off"     // none: analytics events only
)

// Tracking turns on a camera's tracker and its lines and zones: the
// pipeline then appends line_cross, zone_enter, zone_exit and track_end
// events (analytics.Counter) to the spool with the detections, and
// track_end events carry a snapshot of the object at its best frame.
type Tracking struct {
	Tracker   track.Config
	Analytics analytics.Config
	// NoSnapshots leaves track_end events without pictures.
	NoSnapshots bool
}

// tracking is a camera's tracker state; used by the inference goroutine
// only, except the counter's Counts.
type tracking struct {
	tr      *track.Tracker
	counter *analytics.Counter
	shots   *shots // nil: no snapshots
	dets    []track.Detection
	labels  map[int]string
	label   func(int) string
	events  []api.Event
}

func newTracking(t *Tracking) *tracking {
	tk := &tracking{tr: track.New(t.Tracker), counter: analytics.New(t.Analytics), labels: map[int]string{}}
	if !t.NoSnapshots {
		tk.shots = &shots{}
	}
	tk.label = func(id int) string {
		if l, ok := tk.labels[id]; ok {
			return l
		}
		return strconv.Itoa(id)
	}
	return tk
}

// keepDetections reports whether the raw detections of a frame captured at
// t go to the spool.
func (c *camState) keepDetections(t time.Time) bool {
	switch c.Detections {
	case DetectionsOff:
		return false
	case DetectionsSampled:
		if !c.sampled.IsZero() && t.Sub(c.sampled) < c.DetectionsEvery {
			return false
		}
		c.sampled = t
	}
	return true
}

// analyze feeds one frame's kept detections (frame-relative boxes) to the
// camera's tracker and counter and returns the events they make, stamped
// with the camera and model; snapshots are taken at best frames and
// attached to track_end events.
func (c *camState) analyze(f image.Image, at time.Time, kept []models.Detection, model, version string) []api.Event {
	tk := c.trk
	tk.dets = tk.dets[:0]
	for _, d := range kept {
		if l, ok := tk.labels[d.ClassID]; !ok || l != d.Label { // a new model may name it anew
			tk.labels[d.ClassID] = d.Label
		}
		tk.dets = append(tk.dets, track.Detection{Box: d.Box, Score: d.Score, Class: d.ClassID})
	}
	us := at.UnixMicro()
	tk.tr.Update(us, tk.dets)
	b := f.Bounds()
	return c.count(analytics.Frame{TimeUs: us, W: b.Dx(), H: b.Dy(), Tracks: tk.tr.Tracks(), Ended: tk.tr.Ended(), Label: tk.label}, f, model, version)
}

// flush ends every track (the camera stopped) and returns the events.
func (c *camState) flush(model, version string) []api.Event {
	c.trk.tr.EndAll()
	return c.count(analytics.Frame{TimeUs: time.Now().UnixMicro(), Ended: c.trk.tr.Ended(), Label: c.trk.label}, nil, model, version)
}

func (c *camState) count(fr analytics.Frame, img image.Image, model, version string) []api.Event {
	tk := c.trk
	tk.events = tk.counter.Update(fr, tk.events[:0])
	if tk.shots != nil && img != nil {
		for _, slot := range tk.counter.Improved() {
			for _, t := range fr.Tracks {
				if t.Slot == slot {
					tk.shots.take(slot, img, t.Box, t.Class, tk.label(t.Class), t.Score, fr.TimeUs)
				}
			}
		}
	}
	for i := range tk.events {
		e := &tk.events[i]
		e.CameraID, e.Model, e.ModelVersion = c.ID, model, version
		if e.Type != api.TypeTrackEnd || tk.shots == nil {
			continue
		}
		for _, t := range fr.Ended {
			if t.ID != e.Track.ID {
				continue
			}
			// An encoding error (a picture that cannot fit the cap) leaves
			// the event without its snapshot rather than losing the event.
			if snap, err := tk.shots.encode(t.Slot); err == nil {
				e.Snapshot = snap
			}
		}
	}
	return tk.events
}
