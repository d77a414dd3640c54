// Package registry tracks the devices of the fleet: who they are (id,
// labels, versions, engine), whether they are online, their latest
// telemetry with a bounded history for charts, and health flags derived
// from it. Devices appear when they first report state or telemetry.
//
// Registry lives in memory and is written behind to a bbolt file by Flush
// (Run calls it periodically), so a restart keeps the fleet's view.
// Postgres keeps it in PostgreSQL, shared by fleetd replicas. Both satisfy
// Devices and pass the same behaviour tests.
package registry

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

// Health flags.
const (
	FlagOffline        = "offline"
	FlagStaleTelemetry = "stale_telemetry"
	FlagHighDropRate   = "high_drop_rate"
	FlagCameraDown     = "camera_down"
	FlagSpoolBacklog   = "spool_backlog"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("registry: closed")

// Options configures Open. Zero fields take the documented defaults.
type Options struct {
	// StaleAfter flags a device whose last telemetry is older; default 60s.
	StaleAfter time.Duration
	// MaxDropRate flags a device dropping more than this fraction of frames
	// between two telemetry reports; default 0.05.
	MaxDropRate float64
	// MaxSpoolDepth and MaxSpoolAge flag a backed-up spool; defaults 10000 events and 5m.
	MaxSpoolDepth uint64
	MaxSpoolAge   time.Duration
	// HistoryPoints bounds the telemetry history kept per device; default 360
	// (an hour at one report per 10 s, about 40 bytes each).
	HistoryPoints int
	// HistoryAge bounds it by age; default 2h.
	HistoryAge time.Duration
	// FlushEvery is Run's flush period; default 2s.
	FlushEvery time.Duration
}

func (o *Options) defaults() {
	if o.StaleAfter <= 0 {
		o.StaleAfter = time.Minute
	}
	if o.MaxDropRate <= 0 {
		o.MaxDropRate = 0.05
	}
	if o.MaxSpoolDepth == 0 {
		o.MaxSpoolDepth = 10000
	}
	if o.MaxSpoolAge <= 0 {
		o.MaxSpoolAge = 5 * time.Minute
	}
	if o.HistoryPoints <= 0 {
		o.HistoryPoints = 360
	}
	if o.HistoryAge <= 0 {
		o.HistoryAge = 2 * time.Hour
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 2 * time.Second
	}
}

// Device is the registry's view of one device.
type Device struct {
	ID           string            `json:"id"`
	Labels       map[string]string `json:"labels,omitempty"`
	Online       bool              `json:"online"`
	AgentVersion string            `json:"agent_version,omitempty"`
	Model        string            `json:"model,omitempty"`
	ModelVersion string            `json:"model_version,omitempty"`
	Engine       string            `json:"engine,omitempty"`
	Delegate     string            `json:"delegate,omitempty"`
	Cameras      []string          `json:"cameras,omitempty"`
	SnapshotURL  string            `json:"snapshot_url,omitempty"`
	FirstSeen    time.Time         `json:"first_seen"`
	LastSeen     time.Time         `json:"last_seen"`
	// StateTime is when the device last changed its state (its clock).
	StateTime time.Time `json:"state_time,omitzero"`
	// Telemetry is the latest report and TelemetryAt when it arrived.
	Telemetry   *api.Telemetry `json:"telemetry,omitempty"`
	TelemetryAt time.Time      `json:"telemetry_at,omitzero"`
	// Detections counts events stored for this device since fleetd started
	// (persisted), and DetectionsPerMin is the rate over the last minute.
	Detections       uint64  `json:"detections"`
	DetectionsPerMin float64 `json:"detections_per_min"`
	// LastJob is the latest job status the device reported.
	LastJob *api.JobStatus `json:"last_job,omitempty"`
	// Health lists the flags raised now; empty when healthy.
	Health []string `json:"health"`
	// Inventory is the latest the device reported in its state; it is
	// replaced whole, never changed in place.
	Inventory *api.Inventory `json:"inventory,omitempty"`
}

// Point is one telemetry sample in a device's history.
type Point struct {
	Time       time.Time `json:"time"`
	FPS        float64   `json:"fps"`          // sum over cameras
	InferP50Ms float64   `json:"infer_p50_ms"` //
	InferP99Ms float64   `json:"infer_p99_ms"`
	Dropped    uint64    `json:"dropped"`   // frames dropped since the previous point
	DropRate   float64   `json:"drop_rate"` // dropped / (dropped + processed) over that interval
	SpoolDepth uint64    `json:"spool_depth"`
	CamerasUp  int       `json:"cameras_up"`
}

// entry is a device with its volatile parts.
type entry struct {
	Device
	history ring
	rate    [6]uint64 // detections per 10 s slot, ring over the last minute
	rateAt  int64     // unix 10-s slot of rate's newest element
	dirty   bool
	newPts  []Point // points not yet flushed
}

// Registry is safe for concurrent use.
type Registry struct {
	db  *bolt.DB
	opt Options
	now func() time.Time

	mu      sync.Mutex
	devices map[string]*entry
	closed  bool
}

// Schema of the bbolt file, version 1:
//
//	meta     "version" -> "1"
//	devices  id -> Device as JSON (without Health and rate)
//	history  id | 0x00 | unix_ms(8) -> Point as JSON
const schemaVersion = "1"

var (
	bucketMeta    = []byte("meta")
	bucketDevices = []byte("devices")
	bucketHistory = []byte("history")
	keyVersion    = []byte("version")
)

// Open opens or creates the registry file at path and loads it.
func Open(path string, opt Options) (*Registry, error) {
	opt.defaults()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", path, err)
	}
	r := &Registry{db: db, opt: opt, now: time.Now, devices: map[string]*entry{}}
	if err := db.Update(r.load); err != nil {
		db.Close()
		return nil, fmt.Errorf("registry: open %s: %w", path, err)
	}
	return r, nil
}

func (r *Registry) load(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(keyVersion); {
	case v == nil:
		if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
			return err
		}
	case string(v) != schemaVersion:
		return fmt.Errorf("schema version %q, this build reads %q", v, schemaVersion)
	}
	devs, err := tx.CreateBucketIfNotExists(bucketDevices)
	if err != nil {
		return err
	}
	hist, err := tx.CreateBucketIfNotExists(bucketHistory)
	if err != nil {
		return err
	}
	if err := devs.ForEach(func(k, v []byte) error {
		var d Device
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("device %q: %w", k, err)
		}
		r.devices[d.ID] = &entry{Device: d}
		return nil
	}); err != nil {
		return err
	}
	return hist.ForEach(func(k, v []byte) error {
		if len(k) < 10 {
			return nil
		}
		e := r.devices[string(k[:len(k)-9])]
		var p Point
		if e == nil || json.Unmarshal(v, &p) != nil {
			return nil
		}
		e.history.push(p, r.opt.HistoryPoints)
		return nil
	})
}

func histKey(id string, t time.Time) []byte {
	k := append([]byte(id), 0)
	return binary.BigEndian.AppendUint64(k, uint64(t.UnixMilli()))
}

// get returns the entry for id, creating it; under mu.
func (r *Registry) get(id string, now time.Time) *entry {
	e := r.devices[id]
	if e == nil {
		e = &entry{Device: Device{ID: id, FirstSeen: now}}
		r.devices[id] = e
	}
	e.LastSeen = now
	e.dirty = true
	return e
}

// UpdateState records a device's (retained) state message.
func (r *Registry) UpdateState(st api.State) error {
	if err := api.ValidateID(st.DeviceID); err != nil {
		return fmt.Errorf("registry: state: %w", err)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	applyState(&r.get(st.DeviceID, now).Device, st)
	return nil
}

// applyState applies a state message to d.
func applyState(d *Device, st api.State) {
	stTime := time.UnixMilli(st.Time)
	if st.Time != 0 && stTime.Before(d.StateTime) {
		return // an older state delivered late
	}
	d.Online = st.Online
	if st.Time != 0 {
		d.StateTime = stTime
	}
	if !st.Online && len(st.Labels) == 0 && st.Model == "" {
		return // a bare last will carries no description of the device
	}
	d.Labels = maps.Clone(st.Labels)
	d.AgentVersion, d.Model, d.ModelVersion = st.AgentVersion, st.Model, st.ModelVersion
	d.Engine, d.Delegate, d.SnapshotURL = st.Engine, st.Delegate, st.SnapshotURL
	d.Cameras = slices.Clone(st.Cameras)
	if st.Inventory != nil {
		inv := *st.Inventory
		d.Inventory = &inv
	}
}

// UpdateTelemetry records a telemetry report and appends to the history.
func (r *Registry) UpdateTelemetry(t api.Telemetry) error {
	if err := api.ValidateID(t.DeviceID); err != nil {
		return fmt.Errorf("registry: telemetry: %w", err)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	e := r.get(t.DeviceID, now)
	p := applyTelemetry(&e.Device, t, now)
	e.history.push(p, r.opt.HistoryPoints)
	e.newPts = append(e.newPts, p)
	return nil
}

// applyTelemetry applies a telemetry report that arrived at now to d and
// returns its history point.
func applyTelemetry(d *Device, t api.Telemetry, now time.Time) Point {
	p := Point{Time: now, InferP50Ms: t.InferP50Ms, InferP99Ms: t.InferP99Ms, SpoolDepth: t.SpoolDepth}
	var dropped uint64
	for _, c := range t.Cameras {
		p.FPS += c.FPS
		dropped += c.Dropped
		if c.Up {
			p.CamerasUp++
		}
	}
	if prev := d.Telemetry; prev != nil {
		var before uint64
		for _, c := range prev.Cameras {
			before += c.Dropped
		}
		if dropped >= before { // counters restart with the agent
			p.Dropped = dropped - before
		} else {
			p.Dropped = dropped
		}
		if dt := now.Sub(d.TelemetryAt).Seconds(); dt > 0 {
			processed := p.FPS * dt
			if tot := processed + float64(p.Dropped); tot > 0 {
				p.DropRate = float64(p.Dropped) / tot
			}
		}
	}
	tc := t
	tc.Cameras = slices.Clone(t.Cameras)
	d.Telemetry, d.TelemetryAt = &tc, now
	// A report older than the last state (same clock: the device's) must
	// not undo a version change the state announced: it was taken before.
	if t.Time != 0 && time.UnixMilli(t.Time).Before(d.StateTime) {
		return p
	}
	if t.AgentVersion != "" {
		d.AgentVersion = t.AgentVersion
	}
	if t.Model != "" {
		d.Model, d.ModelVersion = t.Model, t.ModelVersion
	}
	if t.Engine != "" {
		d.Engine, d.Delegate = t.Engine, t.Delegate
	}
	return p
}

// RecordJob records a job status report.
func (r *Registry) RecordJob(j api.JobStatus) error {
	if err := api.ValidateID(j.DeviceID); err != nil {
		return fmt.Errorf("registry: job: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	e := r.get(j.DeviceID, r.now())
	jc := j
	e.LastJob = &jc
	return nil
}

// RecordDetections counts n events stored for a device.
func (r *Registry) RecordDetections(device string, n int) {
	if n <= 0 {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	e := r.get(device, now)
	e.Detections += uint64(n)
	e.advance(now)
	e.rate[0] += uint64(n)
}

// advance moves the rate ring to now's 10-s slot.
func (e *entry) advance(now time.Time) {
	slot := now.Unix() / 10
	shift := slot - e.rateAt
	if shift <= 0 {
		return
	}
	if shift >= int64(len(e.rate)) {
		e.rate = [6]uint64{}
	} else {
		copy(e.rate[shift:], e.rate[:len(e.rate)-int(shift)])
		clear(e.rate[:shift])
	}
	e.rateAt = slot
}

// view returns a copy of the device with health and rate computed; under mu.
func (r *Registry) view(e *entry, now time.Time) Device {
	d := e.Device
	d.Labels = maps.Clone(e.Labels)
	d.Cameras = slices.Clone(e.Cameras)
	if e.Telemetry != nil {
		t := *e.Telemetry
		t.Cameras = slices.Clone(t.Cameras)
		d.Telemetry = &t
	}
	e.advance(now)
	var sum uint64
	for _, n := range e.rate {
		sum += n
	}
	d.DetectionsPerMin = float64(sum) // six 10-s slots
	d.Health = r.health(e, now)
	return d
}

func (r *Registry) health(e *entry, now time.Time) []string {
	last, ok := e.history.last()
	return healthOf(r.opt, &e.Device, last, ok, now)
}

// healthOf computes d's health flags at now; last is its latest history point, if ok.
func healthOf(opt Options, d *Device, last Point, ok bool, now time.Time) []string {
	flags := []string{}
	if !d.Online {
		flags = append(flags, FlagOffline)
		return flags
	}
	t := d.Telemetry
	if t == nil || now.Sub(d.TelemetryAt) > opt.StaleAfter {
		flags = append(flags, FlagStaleTelemetry)
	}
	if t == nil {
		return flags
	}
	if ok && last.DropRate > opt.MaxDropRate {
		flags = append(flags, FlagHighDropRate)
	}
	for _, c := range t.Cameras {
		if !c.Up {
			flags = append(flags, FlagCameraDown)
			break
		}
	}
	if t.SpoolDepth > opt.MaxSpoolDepth || t.SpoolOldestS > opt.MaxSpoolAge.Seconds() {
		flags = append(flags, FlagSpoolBacklog)
	}
	return flags
}

// Filter selects devices for List; zero fields match all.
type Filter struct {
	Site, Line string
	Online     *bool
	// Labels must all match too.
	Labels map[string]string
}

// List returns the devices matching f, sorted by id.
func (r *Registry) List(f Filter) []Device {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Device, 0, len(r.devices))
	for _, e := range r.devices {
		if f.match(&e.Device) {
			out = append(out, r.view(e, now))
		}
	}
	sortByID(out)
	return out
}

func (f Filter) match(d *Device) bool {
	if f.Site != "" && d.Labels["site"] != f.Site || f.Line != "" && d.Labels["line"] != f.Line {
		return false
	}
	if f.Online != nil && d.Online != *f.Online {
		return false
	}
	for k, v := range f.Labels {
		if d.Labels[k] != v {
			return false
		}
	}
	return true
}

func sortByID(ds []Device) {
	slices.SortFunc(ds, func(a, b Device) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}

// Counts returns how many devices are known and how many are online.
func (r *Registry) Counts() (total, online int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.devices {
		if e.Online {
			online++
		}
	}
	return len(r.devices), online
}

// Get returns one device.
func (r *Registry) Get(id string) (Device, bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.devices[id]
	if !ok {
		return Device{}, false
	}
	return r.view(e, now), true
}

// History returns a device's telemetry history since the given time, oldest first.
func (r *Registry) History(id string, since time.Time) ([]Point, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.devices[id]
	if !ok {
		return nil, false
	}
	return e.history.since(since), true
}

// Summary counts devices online and offline per site and line.
type Summary struct {
	Site      string `json:"site"`
	Line      string `json:"line"`
	Online    int    `json:"online"`
	Offline   int    `json:"offline"`
	Unhealthy int    `json:"unhealthy"`
	// DetectionsPerMin is the sum of the devices' rates.
	DetectionsPerMin float64 `json:"detections_per_min"`
}

// Summarize groups the fleet by site and line.
func (r *Registry) Summarize() []Summary { return summarize(r.List(Filter{})) }

func summarize(devs []Device) []Summary {
	groups := map[[2]string]*Summary{}
	for _, d := range devs {
		k := [2]string{d.Labels["site"], d.Labels["line"]}
		g := groups[k]
		if g == nil {
			g = &Summary{Site: k[0], Line: k[1]}
			groups[k] = g
		}
		if d.Online {
			g.Online++
		} else {
			g.Offline++
		}
		if len(d.Health) > 0 {
			g.Unhealthy++
		}
		g.DetectionsPerMin += d.DetectionsPerMin
	}
	out := make([]Summary, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b Summary) int {
		if a.Site != b.Site {
			if a.Site < b.Site {
				return -1
			}
			return 1
		}
		switch {
		case a.Line < b.Line:
			return -1
		case a.Line > b.Line:
			return 1
		}
		return 0
	})
	return out
}

// Flush writes changed devices and new history points to disk.
func (r *Registry) Flush(ctx context.Context) error {
	type dirty struct {
		id   string
		d    Device
		dev  []byte
		pts  []Point
		trim time.Time
	}
	now := r.now()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	// Copy under the lock, encode outside it: ingest waits on this lock.
	// A shallow copy is enough, since updates replace (never modify) the
	// maps, slices and pointers a Device holds.
	var work []dirty
	for id, e := range r.devices {
		if !e.dirty {
			continue
		}
		work = append(work, dirty{id: id, d: e.Device, pts: e.newPts, trim: now.Add(-r.opt.HistoryAge)})
		e.dirty, e.newPts = false, nil
	}
	r.mu.Unlock()
	if len(work) == 0 {
		return nil
	}
	for i := range work {
		work[i].d.Health = nil
		b, err := json.Marshal(&work[i].d)
		if err != nil {
			return fmt.Errorf("registry: flush %s: %w", work[i].id, err)
		}
		work[i].dev = b
	}
	err := r.db.Update(func(tx *bolt.Tx) error {
		devs, hist := tx.Bucket(bucketDevices), tx.Bucket(bucketHistory)
		for i, w := range work {
			if i%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if err := devs.Put([]byte(w.id), w.dev); err != nil {
				return err
			}
			for _, p := range w.pts {
				b, _ := json.Marshal(&p)
				if err := hist.Put(histKey(w.id, p.Time), b); err != nil {
					return err
				}
			}
			if len(w.pts) == 0 {
				continue
			}
			// Trim history older than HistoryAge.
			c := hist.Cursor()
			prefix := append([]byte(w.id), 0)
			end := histKey(w.id, w.trim)
			var dead [][]byte
			for k, _ := c.Seek(prefix); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix) && string(k) < string(end); k, _ = c.Next() {
				dead = append(dead, k)
			}
			for _, k := range dead {
				if err := hist.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		// Mark them dirty again so the next flush retries.
		r.mu.Lock()
		for _, w := range work {
			if e := r.devices[w.id]; e != nil {
				e.dirty = true
				e.newPts = append(w.pts, e.newPts...)
			}
		}
		r.mu.Unlock()
		return fmt.Errorf("registry: flush: %w", err)
	}
	return nil
}

// Run flushes every Options.FlushEvery until ctx ends, then flushes once more.
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(r.opt.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return r.Flush(context.Background())
		case <-t.C:
			if err := r.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		}
	}
}

// Close flushes and closes the file; it is safe to call twice.
func (r *Registry) Close() error {
	err := r.Flush(context.Background())
	if errors.Is(err, ErrClosed) {
		return nil
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	if e := r.db.Close(); e != nil && err == nil {
		err = fmt.Errorf("registry: close: %w", e)
	}
	return err
}

// point is a Point stored compactly.
type point struct {
	t                       int64 // unix ms
	fps, p50, p99, dropRate float32
	dropped, depth          uint32
	camerasUp               uint16
}

func sat32(v uint64) uint32 { return uint32(min(v, 1<<32-1)) }

func compact(p Point) point {
	return point{t: p.Time.UnixMilli(), fps: float32(p.FPS), p50: float32(p.InferP50Ms), p99: float32(p.InferP99Ms),
		dropRate: float32(p.DropRate), dropped: sat32(p.Dropped), depth: sat32(p.SpoolDepth), camerasUp: uint16(min(p.CamerasUp, 1<<16-1))}
}

func (c point) expand() Point {
	return Point{Time: time.UnixMilli(c.t).UTC(), FPS: float64(c.fps), InferP50Ms: float64(c.p50), InferP99Ms: float64(c.p99),
		DropRate: float64(c.dropRate), Dropped: uint64(c.dropped), SpoolDepth: uint64(c.depth), CamerasUp: int(c.camerasUp)}
}

// ring is a bounded history, oldest overwritten first.
type ring struct {
	buf   []point
	start int // index of the oldest point when full
}

func (r *ring) push(p Point, capacity int) {
	if len(r.buf) < capacity {
		r.buf = append(r.buf, compact(p))
		return
	}
	r.buf[r.start] = compact(p)
	r.start = (r.start + 1) % len(r.buf)
}

func (r *ring) at(i int) point { return r.buf[(r.start+i)%len(r.buf)] }

func (r *ring) last() (Point, bool) {
	if len(r.buf) == 0 {
		return Point{}, false
	}
	return r.at(len(r.buf) - 1).expand(), true
}

// since returns the points at or after t, oldest first.
func (r *ring) since(t time.Time) []Point {
	ms := t.UnixMilli()
	if t.IsZero() {
		ms = 0
	}
	out := []Point{}
	for i := range len(r.buf) {
		if p := r.at(i); p.t >= ms {
			out = append(out, p.expand())
		}
	}
	return out
}
