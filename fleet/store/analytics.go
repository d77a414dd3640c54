package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"edgefleet/fleet/api"
)

// Analytics events (api.Event with a Type, fleet/api/analytics.go) arrive
// in the same batches and seq stream as detections and are deduplicated on
// the same (device, seq); each store keeps them apart from detections, with
// their snapshot JPEGs apart again, under their own retention.

// ErrNotFound is wrapped by EventSnapshot's error when the event or the
// part is not stored (never sent, or expired).
var ErrNotFound = errors.New("store: not found")

// Snapshot parts.
const (
	PartCrop  = "crop"
	PartThumb = "thumb"
)

// Default snapshot retention, used by fleetd's config when it sets none.
const (
	DefaultSnapshotMaxAge   = 7 * 24 * time.Hour
	DefaultSnapshotMaxBytes = 10 << 30
)

// EventQuery selects analytics events; zero fields match everything.
type EventQuery struct {
	Device, Camera, Type, Label, Line, Zone string
	// From (inclusive) and To (exclusive) bound the capture time.
	From, To time.Time
	// Limit caps the page size; 0 means DefaultLimit, never above MaxLimit.
	Limit int
	// Cursor continues from EventPage.Next.
	Cursor string
}

// EventRecord is a stored analytics event: the event without its Snapshot,
// the device, and which snapshot parts are stored.
type EventRecord struct {
	Device string `json:"device_id"`
	api.Event
	Crop  bool `json:"crop,omitempty"`
	Thumb bool `json:"thumb,omitempty"`
}

// EventPage is one page of QueryEvents, newest first.
type EventPage struct {
	Events []EventRecord `json:"events"`
	// Next is the cursor of the following (older) page, set whenever the
	// page is full.
	Next string `json:"next,omitempty"`
}

// CountQuery selects the line crossings CountLines counts. From and To are
// required; the other fields match everything when empty.
type CountQuery struct {
	Device, Camera, Line string
	From, To             time.Time
}

// LineCount is the number of crossings of one line in one direction by one
// label in [Start, Start+width).
type LineCount struct {
	Start     time.Time `json:"start"`
	Line      string    `json:"line"`
	Direction string    `json:"direction"`
	Label     string    `json:"label"`
	Count     int       `json:"count"`
}

func (q EventQuery) limit() int { return Query{Limit: q.Limit}.limit() }

func (q EventQuery) match(r *EventRecord) bool {
	if !(Query{Device: q.Device, Camera: q.Camera, Label: q.Label, From: q.From, To: q.To}).match(&Record{Device: r.Device, Event: r.Event}) {
		return false
	}
	if q.Type != "" && r.Type != q.Type {
		return false
	}
	if q.Line != "" && (r.Line == nil || r.Line.Line != q.Line) {
		return false
	}
	return q.Zone == "" || r.Zone != nil && r.Zone.Zone == q.Zone
}

func (r *EventRecord) pos() position {
	return position{time: timeKey(r.Time), device: r.Device, seq: r.Seq}
}

// cursorPos decodes an optional cursor.
func cursorPos(c string) (*position, error) {
	if c == "" {
		return nil, nil
	}
	p, err := decodeCursor(c)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// lineRange validates a CountLines query and returns the bucket grid.
func lineRange(q CountQuery, width time.Duration) (from, to, w int64, err error) {
	from, to, err = bucketRange(Query{From: q.From, To: q.To}, width)
	return from, to, width.Microseconds(), err
}

// snapshotPart is one JPEG of an event's snapshot.
type snapshotPart struct {
	part string
	jpeg []byte
}

// splitEvent returns the record to store for an analytics event and the
// snapshot parts to store beside it.
func splitEvent(device string, e *api.Event) (EventRecord, []snapshotPart) {
	r := EventRecord{Device: device, Event: *e}
	r.Snapshot = nil
	var parts []snapshotPart
	if sn := e.Snapshot; sn != nil {
		if len(sn.Crop) > 0 {
			r.Crop = true
			parts = append(parts, snapshotPart{PartCrop, sn.Crop})
		}
		if len(sn.Thumb) > 0 {
			r.Thumb = true
			parts = append(parts, snapshotPart{PartThumb, sn.Thumb})
		}
	}
	return r, parts
}

// encodeEvent is the JSON a store keeps for an analytics event record.
func encodeEvent(r *EventRecord) []byte {
	b, err := json.Marshal(r)
	if err != nil { // only NaN or Inf floats, which ingest refuses
		b, _ = json.Marshal(EventRecord{Device: r.Device, Event: api.Event{Seq: r.Seq, Time: r.Time, CameraID: r.CameraID, Type: r.Type}})
	}
	return b
}

func decodeEvent(b []byte) (EventRecord, error) {
	var r EventRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode analytics event: %w", err)
	}
	return r, nil
}

// checkPart validates a snapshot part name.
func checkPart(part string) error {
	if part != PartCrop && part != PartThumb {
		return fmt.Errorf("%w: snapshot part %q is neither %q nor %q", ErrBadQuery, part, PartCrop, PartThumb)
	}
	return nil
}

// lineCounter groups line crossings for CountLines outside SQL.
type lineCounter struct {
	from, w int64
	counts  map[LineCount]int
}

func (c *lineCounter) add(r *EventRecord) {
	if r.Type != api.TypeLineCross || r.Line == nil {
		return
	}
	start := c.from + (r.Time-c.from)/c.w*c.w
	c.counts[LineCount{Start: time.UnixMicro(start).UTC(), Line: r.Line.Line, Direction: r.Line.Direction, Label: r.Label}]++
}

func (c *lineCounter) rows() []LineCount {
	out := make([]LineCount, 0, len(c.counts))
	for k, n := range c.counts {
		k.Count = n
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b LineCount) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Line+"\x00"+a.Direction+"\x00"+a.Label, b.Line+"\x00"+b.Direction+"\x00"+b.Label)
	})
	return out
}

// countMatch reports whether a line crossing falls in q.
func (q CountQuery) match(r *EventRecord, from, to int64) bool {
	if r.Type != api.TypeLineCross || r.Line == nil || r.Time < from || r.Time >= to {
		return false
	}
	return (q.Device == "" || r.Device == q.Device) && (q.Camera == "" || r.CameraID == q.Camera) && (q.Line == "" || r.Line.Line == q.Line)
}
