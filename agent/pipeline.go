package agent

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"edgefleet/agent/capture"
	"edgefleet/fleet/api"
	"edgefleet/models"
)

// Spool is where the pipeline puts events: agent/spool in production, a
// memory twin in tests. Append assigns the seqs and returns once the events
// are durable.
type Spool interface {
	Append(ctx context.Context, events ...api.Event) (first, last uint64, err error)
}

// Camera is one frame source with the filter its detections pass.
type Camera struct {
	ID     string
	Source capture.Source
	Filter Filter
	// Tracking, if set, tracks the camera's objects and counts its lines
	// and zones (tracking.go); nil: detections only.
	Tracking *Tracking
	// Detections is DetectionsAll ("" too), DetectionsSampled or
	// DetectionsOff; DetectionsEvery is the sampling interval.
	Detections      string
	DetectionsEvery time.Duration
}

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
	Cameras  []Camera
	Detector models.Detector
	Spool    Spool
	// Model and ModelVersion are stamped on every event.
	Model, ModelVersion string
	// ModelInfo, if set, replaces Model and ModelVersion: it is asked before
	// each Detect call, so events name the model that made them even when
	// the detector swaps models between frames.
	ModelInfo func() (name, version string)
	// Batch is the most frames (from different cameras) given to one Detect
	// call; 0 or 1 means one at a time.
	Batch int
	// Tap, if set, is called after the serving inference with each frame,
	// the detector's boxes for it (before the camera's filter) and the
	// inference time per frame. It must not block or change its arguments
	// (agent/shadow's Hub.Tap is one).
	Tap     func(camera string, f capture.Frame, dets []models.Detection, took time.Duration)
	Metrics *Metrics // nil: not recorded in Prometheus
	Logger  *slog.Logger
}

// Pipeline runs one capture goroutine per camera and one inference loop
// shared by all cameras. Each camera hands its newest frame to inference
// through a one-frame mailbox: a frame that arrives while the previous one is
// still waiting replaces it, and the replaced (oldest) frame is counted as
// dropped. Every detection that passes the camera's filter becomes an event
// appended to the spool, in capture order per camera.
type Pipeline struct {
	opts  PipelineOptions
	log   *slog.Logger
	cams  []*camState
	ready chan struct{} // a mailbox was filled
	rr    int           // round-robin start for fairness
	lat   latencies

	inferErrors atomic.Uint64
	appendErrs  atomic.Uint64
	events      atomic.Uint64
}

// camState is one camera's mailbox and counters; safe for concurrent use.
type camState struct {
	Camera
	frames  atomic.Uint64
	dropped atomic.Uint64
	kept    atomic.Uint64 // detections that became events
	lastErr atomic.Pointer[string]

	trk     *tracking // nil without Camera.Tracking; inference goroutine only
	sampled time.Time // frame time of the last sampled detections

	mu      sync.Mutex
	pending *capture.Frame // the hand-off slot
	last    snapshot       // the newest processed frame
}

// snapshot is a processed frame with the detections that counted.
type snapshot struct {
	frame capture.Frame
	dets  []models.Detection
}

// NewPipeline checks the options and prepares a pipeline.
func NewPipeline(opts PipelineOptions) (*Pipeline, error) {
	if len(opts.Cameras) == 0 {
		return nil, errors.New("agent: pipeline: no cameras")
	}
	if opts.Detector == nil || opts.Spool == nil {
		return nil, errors.New("agent: pipeline: detector and spool are required")
	}
	if opts.Batch < 1 {
		opts.Batch = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Pipeline{opts: opts, log: opts.Logger, ready: make(chan struct{}, 1)}
	seen := map[string]bool{}
	for _, c := range opts.Cameras {
		if err := api.ValidateID(c.ID); err != nil {
			return nil, fmt.Errorf("agent: pipeline: camera: %w", err)
		}
		if seen[c.ID] {
			return nil, fmt.Errorf("agent: pipeline: camera %q twice", c.ID)
		}
		seen[c.ID] = true
		if c.Source == nil {
			return nil, fmt.Errorf("agent: pipeline: camera %s has no source", c.ID)
		}
		switch c.Detections {
		case "", DetectionsAll, DetectionsOff:
		case DetectionsSampled:
			if c.DetectionsEvery <= 0 {
				return nil, fmt.Errorf("agent: pipeline: camera %s: sampled detections need an interval", c.ID)
			}
		default:
			return nil, fmt.Errorf("agent: pipeline: camera %s: detections %q is not all, sampled or off", c.ID, c.Detections)
		}
		cs := &camState{Camera: c}
		if c.Tracking != nil {
			cs.trk = newTracking(c.Tracking)
		}
		p.cams = append(p.cams, cs)
	}
	return p, nil
}

// Run captures and detects until ctx is done or every source has ended. It
// returns nil on a clean stop.
func (p *Pipeline) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	var running sync.WaitGroup
	for _, c := range p.cams {
		running.Add(1)
		g.Go(func() error {
			defer running.Done()
			p.capture(gctx, c)
			return nil
		})
	}
	infCtx, stopInfer := context.WithCancel(gctx)
	defer stopInfer()
	g.Go(func() error {
		err := p.infer(infCtx)
		p.flush(ctx)
		return err
	})
	// When every source has ended (files played once), inference stops too.
	g.Go(func() error {
		running.Wait()
		p.drain(infCtx)
		stopInfer()
		return nil
	})
	return g.Wait()
}

// drain waits until the slots are empty, so frames captured before the
// sources ended are still detected.
func (p *Pipeline) drain(ctx context.Context) {
	for ctx.Err() == nil {
		empty := true
		for _, c := range p.cams {
			c.mu.Lock()
			if c.pending != nil {
				empty = false
			}
			c.mu.Unlock()
		}
		if empty {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// capture reads one camera until ctx is done or its source ends.
func (p *Pipeline) capture(ctx context.Context, c *camState) {
	fails := 0
	for {
		f, err := c.Source.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, io.EOF) || errors.Is(err, capture.ErrClosed) {
				p.log.Info("camera source ended", "camera_id", c.ID)
				return
			}
			msg := err.Error()
			c.lastErr.Store(&msg)
			if fails == 0 {
				p.log.Warn("camera error", "camera_id", c.ID, "err", err)
			}
			fails++
			t := time.NewTimer(min(time.Duration(fails)*100*time.Millisecond, 5*time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if fails > 0 {
			p.log.Info("camera back", "camera_id", c.ID, "after_errors", fails)
			fails = 0
		}
		c.lastErr.Store(nil)
		c.frames.Add(1)
		p.opts.Metrics.frame(c.ID)
		c.mu.Lock()
		dropped := c.pending != nil
		c.pending = &f
		c.mu.Unlock()
		if dropped {
			c.dropped.Add(1)
			p.opts.Metrics.drop(c.ID)
		}
		select {
		case p.ready <- struct{}{}:
		default:
		}
	}
}

// take empties up to Batch slots, starting after the camera served last.
func (p *Pipeline) take() (cams []*camState, frames []capture.Frame) {
	n := len(p.cams)
	for i := 0; i < n && len(frames) < p.opts.Batch; i++ {
		c := p.cams[(p.rr+i)%n]
		c.mu.Lock()
		if c.pending != nil {
			cams = append(cams, c)
			frames = append(frames, *c.pending)
			c.pending = nil
		}
		c.mu.Unlock()
	}
	p.rr = (p.rr + 1) % n
	return cams, frames
}

// infer is the inference loop shared by all cameras.
func (p *Pipeline) infer(ctx context.Context) error {
	for {
		cams, frames := p.take()
		if len(frames) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-p.ready:
			}
			continue
		}
		imgs := make([]image.Image, len(frames))
		for i, f := range frames {
			imgs[i] = f.Image
		}
		// Asked before Detect: a swap waits for the frame in flight, so the
		// model named now is the one that runs it, unless a swap slips in
		// between these two calls.
		model, version := p.Model()
		start := time.Now()
		dets, err := p.opts.Detector.Detect(ctx, imgs)
		took := time.Since(start)
		if err == nil && len(dets) != len(imgs) {
			err = fmt.Errorf("agent: detector returned %d results for %d images", len(dets), len(imgs))
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if p.inferErrors.Add(1) == 1 {
				p.log.Error("detect failed", "err", err)
			}
			p.opts.Metrics.inferError()
			continue
		}
		p.lat.add(took)
		p.opts.Metrics.infer(took, len(imgs))
		if p.opts.Tap != nil {
			for i, c := range cams {
				p.opts.Tap(c.ID, frames[i], dets[i], took/time.Duration(len(imgs)))
			}
		}

		var events []api.Event
		for i, c := range cams {
			b := frames[i].Image.Bounds()
			var kept []models.Detection
			spool := c.keepDetections(frames[i].Time)
			for _, d := range dets[i] {
				if !c.Filter.Keep(d, b.Dx(), b.Dy()) {
					continue
				}
				// Boxes relative to the frame's origin, whatever its bounds.
				d.Box[0] -= float32(b.Min.X)
				d.Box[2] -= float32(b.Min.X)
				d.Box[1] -= float32(b.Min.Y)
				d.Box[3] -= float32(b.Min.Y)
				kept = append(kept, d)
				if !spool {
					continue
				}
				events = append(events, api.Event{
					CameraID:     c.ID,
					Time:         frames[i].Time.UnixMicro(),
					Model:        model,
					ModelVersion: version,
					ClassID:      d.ClassID,
					Label:        d.Label,
					Score:        d.Score,
					Box:          d.Box,
				})
			}
			if c.trk != nil {
				events = append(events, c.analyze(frames[i].Image, frames[i].Time, kept, model, version)...)
			}
			c.kept.Add(uint64(len(kept)))
			p.opts.Metrics.detected(c.ID, kept, len(dets[i])-len(kept))
			c.mu.Lock()
			c.last = snapshot{frame: frames[i], dets: kept}
			c.mu.Unlock()
		}
		p.store(ctx, events)
	}
}

// store appends events to the spool, counting them or their loss.
func (p *Pipeline) store(ctx context.Context, events []api.Event) {
	if len(events) == 0 {
		return
	}
	// Detections already made are stored even while shutting down.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	_, _, err := p.opts.Spool.Append(actx, events...)
	cancel()
	if err != nil {
		p.appendErrs.Add(uint64(len(events)))
		p.opts.Metrics.lost(len(events))
		p.log.Error("spool append failed; events lost", "events", len(events), "err", err)
		return
	}
	p.events.Add(uint64(len(events)))
}

// flush ends the tracks of every tracking camera once inference has
// stopped, and stores their last events (zone exits, track_end).
func (p *Pipeline) flush(ctx context.Context) {
	model, version := p.Model()
	for _, c := range p.cams {
		if c.trk != nil {
			p.store(ctx, c.flush(model, version))
		}
	}
}

// Model returns the name and version of the model serving now.
func (p *Pipeline) Model() (name, version string) {
	if p.opts.ModelInfo != nil {
		return p.opts.ModelInfo()
	}
	return p.opts.Model, p.opts.ModelVersion
}

// CameraCounters are one camera's totals since start.
type CameraCounters struct {
	ID              string
	Frames, Dropped uint64
	Detections      uint64
	Err             string // why the camera is down; "" while it delivers
	Up              bool
	LastFrame       time.Time // capture time of the newest processed frame
	// Lines and Zones are the camera's analytics counters (with Tracking).
	Lines []api.LineCount
	Zones []api.ZoneCount
}

// Counters returns every camera's totals, in configuration order.
func (p *Pipeline) Counters() []CameraCounters {
	out := make([]CameraCounters, len(p.cams))
	for i, c := range p.cams {
		cc := CameraCounters{ID: c.ID, Frames: c.frames.Load(), Dropped: c.dropped.Load(), Detections: c.kept.Load()}
		if e := c.lastErr.Load(); e != nil {
			cc.Err = *e
		}
		cc.Up = cc.Frames > 0 && cc.Err == ""
		if r, ok := c.Source.(capture.Reporter); ok {
			st := r.Status()
			cc.Up = st.Up
			if !st.Up && cc.Err == "" {
				cc.Err = st.Err
			}
		}
		c.mu.Lock()
		cc.LastFrame = c.last.frame.Time
		c.mu.Unlock()
		if c.trk != nil {
			cc.Lines, cc.Zones = c.trk.counter.Counts()
		}
		out[i] = cc
	}
	return out
}

// Snapshot returns the newest processed frame of a camera and the
// detections that counted in it; ok is false for an unknown camera or
// before the first frame.
func (p *Pipeline) Snapshot(camera string) (frame capture.Frame, dets []models.Detection, region [][2]float64, ok bool) {
	for _, c := range p.cams {
		if c.ID != camera {
			continue
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.last.frame.Image == nil {
			return capture.Frame{}, nil, nil, false
		}
		return c.last.frame, c.last.dets, c.Filter.Region, true
	}
	return capture.Frame{}, nil, nil, false
}

// Events is the number of events appended to the spool since start.
func (p *Pipeline) Events() uint64 { return p.events.Load() }

// Lost is the number of events the spool refused.
func (p *Pipeline) Lost() uint64 { return p.appendErrs.Load() }

// InferenceQuantiles returns the p50 and p99 of recent Detect calls.
func (p *Pipeline) InferenceQuantiles() (p50, p99 time.Duration) { return p.lat.quantiles() }

// latencies keeps the most recent inference times.
type latencies struct {
	mu  sync.Mutex
	buf [1024]time.Duration
	n   int
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.buf[l.n%len(l.buf)] = d
	l.n++
	l.mu.Unlock()
}

func (l *latencies) quantiles() (p50, p99 time.Duration) {
	l.mu.Lock()
	s := append([]time.Duration(nil), l.buf[:min(l.n, len(l.buf))]...)
	l.mu.Unlock()
	if len(s) == 0 {
		return 0, 0
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(f float64) time.Duration { return s[min(len(s)-1, int(f*float64(len(s))))] }
	return q(0.50), q(0.99)
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
