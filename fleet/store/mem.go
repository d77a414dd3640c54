package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"edgefleet/fleet/api"
)

// Mem is an in-memory Store with the same behaviour as Bolt, for tests.
// It is safe for concurrent use.
type Mem struct {
	ret Retention

	mu      sync.Mutex
	closed  bool
	records map[string]map[uint64]Record // device -> seq -> record
	seen    map[string]map[uint64]bool   // every (device, seq) ever stored
	size    map[string]int               // device/seq key -> encoded size, for MaxBytes
	events  map[string]map[uint64]EventRecord
	snaps   map[snapKey][]byte
}

type snapKey struct {
	device string
	seq    uint64
	part   string
}

var (
	_ Store     = (*Mem)(nil)
	_ Submitter = (*Mem)(nil)
)

// NewMem returns an empty in-memory store with the given retention.
func NewMem(ret Retention) *Mem {
	return &Mem{ret: ret, records: map[string]map[uint64]Record{}, seen: map[string]map[uint64]bool{}, size: map[string]int{},
		events: map[string]map[uint64]EventRecord{}, snaps: map[snapKey][]byte{}}
}

func sizeKey(device string, seq uint64) string { return fmt.Sprintf("%s\x00%d", device, seq) }

// Submit implements Submitter; it calls done before returning.
func (m *Mem) Submit(ctx context.Context, device string, events []api.Event, done func(Result, error)) error {
	res, err := m.Ingest(ctx, device, events)
	if err != nil {
		return err
	}
	done(res, nil)
	return nil
}

// Ingest implements Store.
func (m *Mem) Ingest(ctx context.Context, device string, events []api.Event) (Result, error) {
	if err := api.ValidateID(device); err != nil {
		return Result{}, fmt.Errorf("store: ingest: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("store: ingest: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Result{}, ErrClosed
	}
	var res Result
	dev, seen := m.records[device], m.seen[device]
	if dev == nil {
		dev, seen = map[uint64]Record{}, map[uint64]bool{}
		m.records[device], m.seen[device] = dev, seen
	}
	for _, e := range events {
		if seen[e.Seq] {
			res.Duplicates++
			continue
		}
		seen[e.Seq] = true
		res.Stored++
		if e.IsAnalytics() {
			m.addEvent(device, &e)
			continue
		}
		r := Record{Device: device, Event: e}
		b := encodeValue(&e)
		dev[e.Seq] = r
		m.size[sizeKey(device, e.Seq)] = len(b)
	}
	return res, nil
}

// sorted returns the records matching q in the store's order for q, under mu.
func (m *Mem) sorted(q Query) []Record {
	var out []Record
	for d, dev := range m.records {
		if q.Device != "" && d != q.Device {
			continue
		}
		for _, r := range dev {
			if q.match(&r) {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return newestFirst(posOf(&a), posOf(&b)) })
	return out
}

// Query implements Store.
func (m *Mem) Query(ctx context.Context, q Query) (Page, error) {
	var cur *position
	if q.Cursor != "" {
		p, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		cur = &p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Page{}, ErrClosed
	}
	limit := q.limit()
	var page Page
	for _, r := range m.sorted(q) {
		if cur != nil {
			if !posOf(&r).less(*cur) {
				continue
			}
		}
		page.Records = append(page.Records, r)
		if len(page.Records) >= limit {
			page.Next = encodeCursor(posOf(&r))
			break
		}
	}
	return page, nil
}

// Count implements Store.
func (m *Mem) Count(ctx context.Context, q Query, width time.Duration) ([]Bucket, error) {
	from, to, err := bucketRange(q, width)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	c := newCounter(from, to, width.Microseconds())
	for _, r := range m.sorted(q) {
		c.add(int64(timeKey(r.Time)))
	}
	return c.buckets(), nil
}

// Retain implements Store.
func (m *Mem) Retain(ctx context.Context, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	all := m.sorted(Query{})
	slices.Reverse(all) // oldest first
	var count, size int64
	for _, r := range all {
		count++
		size += int64(m.size[sizeKey(r.Device, r.Seq)])
	}
	n := 0
	for _, r := range all {
		old := m.ret.MaxAge > 0 && timeKey(r.Time) < timeKey(now.Add(-m.ret.MaxAge).UnixMicro())
		over := m.ret.MaxEvents > 0 && count > m.ret.MaxEvents || m.ret.MaxBytes > 0 && size > m.ret.MaxBytes
		if !old && !over {
			break
		}
		k := sizeKey(r.Device, r.Seq)
		count--
		size -= int64(m.size[k])
		delete(m.size, k)
		delete(m.records[r.Device], r.Seq)
		n++
	}
	m.retainEvents(now)
	return n, nil
}

// Close implements Store.
func (m *Mem) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}

// newestFirst orders positions newest first, for sorting.
func newestFirst(a, b position) int {
	switch {
	case a.less(b):
		return 1
	case b.less(a):
		return -1
	}
	return 0
}

func (m *Mem) addEvent(device string, e *api.Event) {
	r, parts := splitEvent(device, e)
	if m.events[device] == nil {
		m.events[device] = map[uint64]EventRecord{}
	}
	m.events[device][e.Seq] = r
	for _, p := range parts {
		m.snaps[snapKey{device, e.Seq, p.part}] = p.jpeg
	}
}

// sortedEvents returns the events matching q, newest first, under mu.
func (m *Mem) sortedEvents(match func(*EventRecord) bool) []EventRecord {
	var out []EventRecord
	for _, dev := range m.events {
		for _, r := range dev {
			if match(&r) {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b EventRecord) int { return newestFirst(a.pos(), b.pos()) })
	return out
}

// QueryEvents implements Store.
func (m *Mem) QueryEvents(ctx context.Context, q EventQuery) (EventPage, error) {
	cur, err := cursorPos(q.Cursor)
	if err != nil {
		return EventPage{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return EventPage{}, ErrClosed
	}
	page := EventPage{Events: []EventRecord{}}
	for _, r := range m.sortedEvents(q.match) {
		if cur != nil && !r.pos().less(*cur) {
			continue
		}
		_, r.Crop = m.snaps[snapKey{r.Device, r.Seq, PartCrop}]
		_, r.Thumb = m.snaps[snapKey{r.Device, r.Seq, PartThumb}]
		page.Events = append(page.Events, r)
		if len(page.Events) >= q.limit() {
			page.Next = encodeCursor(r.pos())
			break
		}
	}
	return page, nil
}

// CountLines implements Store.
func (m *Mem) CountLines(ctx context.Context, q CountQuery, width time.Duration) ([]LineCount, error) {
	from, to, w, err := lineRange(q, width)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	c := &lineCounter{from: from, w: w, counts: map[LineCount]int{}}
	for _, r := range m.sortedEvents(func(r *EventRecord) bool { return q.match(r, q.From.UnixMicro(), to) }) {
		c.add(&r)
	}
	return c.rows(), nil
}

// EventSnapshot implements Store.
func (m *Mem) EventSnapshot(ctx context.Context, device string, seq uint64, part string) ([]byte, error) {
	if err := checkPart(part); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	b, ok := m.snaps[snapKey{device, seq, part}]
	if !ok {
		return nil, fmt.Errorf("%w: snapshot %s of %s/%d", ErrNotFound, part, device, seq)
	}
	return b, nil
}

// retainEvents expires analytics events and snapshots, under mu.
func (m *Mem) retainEvents(now time.Time) {
	all := m.sortedEvents(func(*EventRecord) bool { return true })
	slices.Reverse(all) // oldest first
	var size int64
	for _, b := range m.snaps {
		size += int64(len(b))
	}
	for _, r := range all {
		if m.ret.MaxAge > 0 && r.Time < now.Add(-m.ret.MaxAge).UnixMicro() {
			delete(m.events[r.Device], r.Seq)
		}
		old := m.ret.SnapshotMaxAge > 0 && r.Time < now.Add(-m.ret.SnapshotMaxAge).UnixMicro()
		over := m.ret.SnapshotMaxBytes > 0 && size > m.ret.SnapshotMaxBytes
		_, stillThere := m.events[r.Device][r.Seq]
		if !old && !over && stillThere {
			continue
		}
		for _, part := range []string{PartCrop, PartThumb} {
			k := snapKey{r.Device, r.Seq, part}
			size -= int64(len(m.snaps[k]))
			delete(m.snaps, k)
		}
	}
}
