package shadow

import (
	"context"
	"errors"
	"image"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"edgefleet/agent/capture"
	"edgefleet/fleet/api"
	"edgefleet/models"
)

// DefaultCPUPercent is the budget of a spec that names none.
const DefaultCPUPercent = 25

// RunnerOptions configure a Runner.
type RunnerOptions struct {
	Spec api.ShadowSpec
	// Candidate is the model on trial; it runs on the Runner's goroutine only.
	Candidate models.Detector
	// Samples keeps the disagreement samples; nil: NewSamples(0, 0).
	Samples *Samples
	Logger  *slog.Logger
	Now     func() time.Time // nil: time.Now
}

// Runner runs the candidate on a sample of the frames the pipeline served
// (Tap) within a CPU budget and compares its boxes with the serving model's.
// Tap never blocks: a sampled frame that arrives while the candidate runs or
// rests for its budget is counted as skipped.
type Runner struct {
	opts  RunnerOptions
	every int
	pct   int
	acc   *Accumulator
	log   *slog.Logger

	idle atomic.Bool // the candidate waits for a frame
	jobs chan tapped
	quit chan struct{} // closed by Finish
	once sync.Once

	mu   sync.Mutex
	seen map[string]uint64 // frames tapped per camera
}

type tapped struct {
	camera string
	frame  capture.Frame
	dets   []models.Detection
	took   time.Duration
}

// NewRunner prepares a runner; Run starts it.
func NewRunner(opts RunnerOptions) *Runner {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Samples == nil {
		opts.Samples = NewSamples(0, 0)
	}
	r := &Runner{opts: opts, every: max(opts.Spec.SampleEvery, 1), pct: opts.Spec.CPUPercent, log: opts.Logger,
		jobs: make(chan tapped, 1), quit: make(chan struct{}), seen: map[string]uint64{}}
	if r.pct <= 0 || r.pct > 100 {
		r.pct = DefaultCPUPercent
	}
	r.acc = NewAccumulator(opts.Now(), opts.Samples)
	return r
}

// Tap is called by the pipeline after the serving model ran on a frame,
// with the serving model's boxes (before camera filters) and its inference
// time for the frame. It returns at once.
func (r *Runner) Tap(camera string, f capture.Frame, dets []models.Detection, took time.Duration) {
	r.mu.Lock()
	n := r.seen[camera]
	r.seen[camera] = n + 1
	r.mu.Unlock()
	if n%uint64(r.every) != 0 {
		return
	}
	if !r.idle.CompareAndSwap(true, false) {
		r.acc.Skip()
		return
	}
	r.jobs <- tapped{camera: camera, frame: f, dets: slices.Clone(dets), took: took}
}

// Rest is how long the candidate pauses after an inference of took so
// that it uses at most pct percent of one core.
func Rest(took time.Duration, pct int) time.Duration {
	if pct >= 100 {
		return 0
	}
	return took * time.Duration(100-pct) / time.Duration(pct)
}

// Finish makes Run return once the frame in flight, if any, is compared
// (ctx still cancels that frame). Tap the runner no more after it.
func (r *Runner) Finish() { r.once.Do(func() { close(r.quit) }) }

// Run runs the candidate on tapped frames until ctx is done or Finish.
func (r *Runner) Run(ctx context.Context) {
	for {
		r.idle.Store(true)
		var t tapped
		select {
		case <-ctx.Done():
			r.idle.Store(false)
			return
		case <-r.quit:
			r.idle.Store(false)
			return
		case t = <-r.jobs:
		}
		start := time.Now()
		res, err := r.opts.Candidate.Detect(ctx, []image.Image{t.frame.Image})
		took := time.Since(start)
		if err == nil && len(res) != 1 {
			err = errWrongCount
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("shadow: candidate detect failed", "camera_id", t.camera, "err", err)
		} else {
			fr := Compare(t.dets, res[0])
			r.acc.Add(t.camera, fr, t.took, took)
			if err := r.opts.Samples.Offer(t.camera, t.frame.Time, t.frame.Image, t.dets, res[0], fr); err != nil {
				r.log.Warn("shadow: sample", "camera_id", t.camera, "err", err)
			}
		}
		// The budget covers the comparison and a sample's encoding too.
		if d := Rest(time.Since(start), r.pct); d > 0 {
			tm := time.NewTimer(d)
			select {
			case <-ctx.Done():
				tm.Stop()
				return
			case <-r.quit:
				tm.Stop()
				return
			case <-tm.C:
			}
		}
	}
}

// Report is the measurement so far (final: with the samples).
func (r *Runner) Report(final bool) api.ShadowReport {
	return r.acc.Report(r.opts.Now(), final, r.opts.Spec.MinAgreement)
}

// Frames is the number of frames compared so far.
func (r *Runner) Frames() int { return r.acc.Frames() }

var errWrongCount = errors.New("shadow: candidate returned a wrong number of results")

// Hub is the pipeline's tap point: the pipeline calls Tap on every frame
// and the Hub forwards to the Runner attached, if any. It is safe for
// concurrent use; the zero value is ready.
type Hub struct {
	cur atomic.Pointer[Runner]
}

// Tap forwards to the attached runner.
func (h *Hub) Tap(camera string, f capture.Frame, dets []models.Detection, took time.Duration) {
	if r := h.cur.Load(); r != nil {
		r.Tap(camera, f, dets, took)
	}
}

// Attach makes r receive the frames (nil detaches).
func (h *Hub) Attach(r *Runner) { h.cur.Store(r) }
