package rest

import (
	"net/url"
	"strconv"
	"time"

	"edgefleet/fleet/api"
)

// Analytics events (api.Event with a Type: track_end, line_cross,
// zone_enter, zone_exit) and the counts made from them:
//
//	GET /api/v1/events?device=&camera=&type=&label=&line=&zone=&from=&to=&limit=&cursor=
//	    EventPage, newest first; format=csv gives EventCSVHeader rows instead
//	GET /api/v1/events/{device}/{seq}/snapshot?part=crop|thumb
//	    the event's JPEG (image/jpeg); 404 when the event has none or it expired
//	GET /api/v1/counts?device=&camera=&line=&from=&to=&bucket=1h
//	    CountPage: line crossings per bucket, line, direction and label;
//	    format=csv gives CountCSVHeader rows instead
//
// from and to take RFC 3339, unix milliseconds or a negative duration
// relative to now ("-24h"), as the detection routes do.

// EventQuery is the query of GET /api/v1/events; zero fields match all.
type EventQuery struct {
	Device, Camera, Type, Label, Line, Zone string
	From, To                                string
	// Limit is the page size (1..MaxLimit; 0: DefaultLimit).
	Limit int
	// Cursor continues from EventPage.Next.
	Cursor string
}

// Values is the query string of q.
func (q EventQuery) Values() url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"device", q.Device}, {"camera", q.Camera}, {"type", q.Type}, {"label", q.Label},
		{"line", q.Line}, {"zone", q.Zone}, {"from", q.From}, {"to", q.To}, {"cursor", q.Cursor}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Snapshot parts of GET /api/v1/events/{device}/{seq}/snapshot?part=.
const (
	PartCrop  = "crop"
	PartThumb = "thumb"
)

// EventRecord is a stored analytics event: the event (its Snapshot field
// always nil here) and the device that sent it. Crop and Thumb say which
// snapshot parts fleetd holds for it.
type EventRecord struct {
	Device string `json:"device_id"`
	api.Event
	Crop  bool `json:"crop,omitempty"`
	Thumb bool `json:"thumb,omitempty"`
}

// EventPage is the body of GET /api/v1/events: newest first.
type EventPage struct {
	Events []EventRecord `json:"events"`
	// Next is the cursor of the following (older) page; set whenever the
	// page is full.
	Next string `json:"next,omitempty"`
}

// CountQuery is the query of GET /api/v1/counts. Bucket is a Go duration
// ("1h", "15m"); empty means 1h.
type CountQuery struct {
	Device, Camera, Line string
	From, To             string
	Bucket               string
}

// Values is the query string of q.
func (q CountQuery) Values() url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"device", q.Device}, {"camera", q.Camera}, {"line", q.Line},
		{"from", q.From}, {"to", q.To}, {"bucket", q.Bucket}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	return v
}

// CountRow is the number of crossings of one line, in one direction, by one
// label, in [Start, Start+bucket), summed over the devices and cameras that
// match the query.
type CountRow struct {
	Start     time.Time `json:"start"`
	Line      string    `json:"line"`
	Direction string    `json:"direction"`
	Label     string    `json:"label"`
	Count     int       `json:"count"`
}

// CountPage is the body of GET /api/v1/counts: rows by Start, then line,
// direction and label; buckets without crossings are left out.
type CountPage struct {
	From   time.Time  `json:"from"`
	To     time.Time  `json:"to"`
	Bucket string     `json:"bucket"`
	Total  int        `json:"total"`
	Rows   []CountRow `json:"rows"`
}

// EventCSVHeader is the first row of GET /api/v1/events?format=csv.
var EventCSVHeader = []string{"device_id", "seq", "camera_id", "time", "type", "label", "score",
	"track_id", "line", "direction", "zone", "dwell_ms", "first_seen", "last_seen", "frames"}

// CountCSVHeader is the first row of GET /api/v1/counts?format=csv.
var CountCSVHeader = []string{"start", "line", "direction", "label", "count"}
