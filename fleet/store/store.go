// Package store keeps the detections that devices send to the fleet, and
// the analytics events (with their snapshots) that travel with them
// (analytics.go).
//
// A Store is idempotent on (device, seq): ingesting the same event twice
// stores it once, so devices can resend anything that was not acknowledged.
// Ingest returns only once the events are durable, so the caller may
// acknowledge them. Three implementations share one behaviour (the same
// tests run against each): Bolt (bbolt, fsync'd group commits) for a
// single fleetd, Postgres (PostgreSQL, day partitions, commits grouped
// across devices) for one or more fleetd replicas on a shared database,
// and Mem, an in-memory twin for tests.
package store

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"edgefleet/fleet/api"
)

// Errors returned by stores.
var (
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("store: closed")
	// ErrBadCursor is returned by Query for a cursor it did not produce.
	ErrBadCursor = errors.New("store: bad cursor")
	// ErrBadQuery is returned for a query that makes no sense (e.g. a zero bucket width).
	ErrBadQuery = errors.New("store: bad query")
)

// Store is the detection store. Implementations are safe for concurrent use.
type Store interface {
	// Ingest stores events of one device, given in increasing seq. Events
	// already stored are counted as duplicates and not stored again. When
	// it returns nil, every event of the call is durable.
	Ingest(ctx context.Context, device string, events []api.Event) (Result, error)
	// Query returns matching records, newest first, one page at a time.
	Query(ctx context.Context, q Query) (Page, error)
	// Count counts matching records per time bucket of the given width.
	Count(ctx context.Context, q Query, width time.Duration) ([]Bucket, error)
	// Retain deletes records beyond the retention policy and reports how
	// many; it also expires analytics events (MaxAge) and their snapshots
	// (SnapshotMaxAge, SnapshotMaxBytes), which it does not count.
	Retain(ctx context.Context, now time.Time) (int, error)
	// QueryEvents returns analytics events (analytics.go), newest first,
	// one page at a time. Ingest stores the events whose Type is not
	// api.TypeDetection apart from detections: Query and Count never see
	// them, and QueryEvents never sees detections.
	QueryEvents(ctx context.Context, q EventQuery) (EventPage, error)
	// CountLines counts line_cross events per bucket of width, line,
	// direction and label.
	CountLines(ctx context.Context, q CountQuery, width time.Duration) ([]LineCount, error)
	// EventSnapshot returns one part (PartCrop or PartThumb) of an analytics
	// event's snapshot, or an error wrapping ErrNotFound.
	EventSnapshot(ctx context.Context, device string, seq uint64, part string) ([]byte, error)
	// Close releases the store; it is safe to call twice.
	Close() error
}

// Submitter is implemented by stores that can take events without a
// goroutine waiting for each call: done is called once the events are
// durable or have failed. Ingest is Submit plus a wait.
type Submitter interface {
	Submit(ctx context.Context, device string, events []api.Event, done func(Result, error)) error
}

// Result says what one Ingest call did.
type Result struct {
	Stored     int // new events written
	Duplicates int // events already stored before
}

// Record is a stored detection: the event and the device that sent it.
type Record struct {
	Device string `json:"device_id"`
	api.Event
}

// Query selects records. Zero fields match everything.
type Query struct {
	Device string
	Camera string
	Label  string
	// From (inclusive) and To (exclusive) bound the capture time; zero means unbounded.
	From, To time.Time
	// Limit caps the page size; 0 means DefaultLimit, and it never exceeds MaxLimit.
	Limit int
	// Cursor continues a previous Query from Page.Next.
	Cursor string
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// Page is one page of query results.
type Page struct {
	Records []Record `json:"records"`
	// Next is the cursor for the following (older) page. It is set whenever
	// the page is full, so the last page may come back empty.
	Next string `json:"next,omitempty"`
}

// Bucket is the number of records in [Start, Start+width).
type Bucket struct {
	Start time.Time `json:"start"`
	Count int       `json:"count"`
}

// Retention bounds what a store keeps; zero fields mean no bound.
type Retention struct {
	MaxAge    time.Duration // drop records captured longer ago than this
	MaxEvents int64         // keep at most this many records, dropping the oldest
	MaxBytes  int64         // keep at most about this many bytes of records
	// SnapshotMaxAge and SnapshotMaxBytes bound the snapshots of analytics
	// events (by the capture time of their event; bytes of JPEG). Analytics
	// events themselves follow MaxAge.
	SnapshotMaxAge   time.Duration
	SnapshotMaxBytes int64
}

// MaxBuckets caps how many buckets Count returns.
const MaxBuckets = 100000

func (q Query) limit() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}

func (q Query) match(r *Record) bool {
	if q.Device != "" && r.Device != q.Device {
		return false
	}
	if q.Camera != "" && r.CameraID != q.Camera {
		return false
	}
	if q.Label != "" && !strings.EqualFold(r.Label, q.Label) {
		return false
	}
	t := r.Time
	if !q.From.IsZero() && t < q.From.UnixMicro() {
		return false
	}
	if !q.To.IsZero() && t >= q.To.UnixMicro() {
		return false
	}
	return true
}

// position is where a record sits in the newest-first order: time, then
// device, then seq. Cursors encode the position of the last record returned.
type position struct {
	time   uint64
	device string
	seq    uint64
}

func posOf(r *Record) position {
	return position{time: timeKey(r.Time), device: r.Device, seq: r.Seq}
}

// timeKey maps a capture time to an unsigned key; times before 1970 sort first.
func timeKey(us int64) uint64 {
	if us < 0 {
		return 0
	}
	return uint64(us)
}

// eventKey is time(8) | device | 0x00 | seq(8); it orders records by time.
func eventKey(p position) []byte {
	k := make([]byte, 0, 17+len(p.device))
	k = binary.BigEndian.AppendUint64(k, p.time)
	k = append(k, p.device...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, p.seq)
}

func parseEventKey(k []byte) (position, bool) {
	if len(k) < 18 || k[len(k)-9] != 0 {
		return position{}, false
	}
	dev := string(k[8 : len(k)-9])
	if api.ValidateID(dev) != nil {
		return position{}, false
	}
	return position{
		time:   binary.BigEndian.Uint64(k[:8]),
		device: dev,
		seq:    binary.BigEndian.Uint64(k[len(k)-8:]),
	}, true
}

// less reports whether a comes before b in ascending (oldest first) order.
func (a position) less(b position) bool {
	if a.time != b.time {
		return a.time < b.time
	}
	if a.device != b.device {
		return a.device < b.device
	}
	return a.seq < b.seq
}

func encodeCursor(p position) string {
	return base64.RawURLEncoding.EncodeToString(eventKey(p))
}

func decodeCursor(c string) (position, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return position{}, fmt.Errorf("%w: %v", ErrBadCursor, err)
	}
	p, ok := parseEventKey(b)
	if !ok {
		return position{}, ErrBadCursor
	}
	return p, nil
}

// bucketRange validates a Count query and returns the bucket grid.
func bucketRange(q Query, width time.Duration) (from, to int64, err error) {
	if width <= 0 {
		return 0, 0, fmt.Errorf("%w: bucket width %v", ErrBadQuery, width)
	}
	if q.From.IsZero() || q.To.IsZero() || !q.From.Before(q.To) {
		return 0, 0, fmt.Errorf("%w: count needs from < to", ErrBadQuery)
	}
	w := width.Microseconds()
	if w <= 0 {
		return 0, 0, fmt.Errorf("%w: bucket width %v below 1µs", ErrBadQuery, width)
	}
	from = q.From.UnixMicro() - mod(q.From.UnixMicro(), w)
	to = q.To.UnixMicro()
	if (to-from)/w+1 > MaxBuckets {
		return 0, 0, fmt.Errorf("%w: more than %d buckets; widen the bucket", ErrBadQuery, MaxBuckets)
	}
	return from, to, nil
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// counter accumulates bucket counts for Count.
type counter struct {
	from, w int64
	counts  []int
}

func newCounter(from, to, w int64) *counter {
	n := (to - from + w - 1) / w
	return &counter{from: from, w: w, counts: make([]int, n)}
}

func (c *counter) add(us int64) {
	i := (us - c.from) / c.w
	if i >= 0 && i < int64(len(c.counts)) {
		c.counts[i]++
	}
}

func (c *counter) buckets() []Bucket {
	out := make([]Bucket, len(c.counts))
	for i, n := range c.counts {
		out[i] = Bucket{Start: time.UnixMicro(c.from + int64(i)*c.w).UTC(), Count: n}
	}
	return out
}
