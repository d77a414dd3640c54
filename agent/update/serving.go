package update

import (
	"context"
	"errors"
	"fmt"
	"image"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"edgefleet/models"
	"edgefleet/models/manifest"
	"edgefleet/models/yolo"
)

// Serving is the model the agent serves: the pipeline's detector, whose
// model the Executor replaces (Swap) between two frames. It measures the
// inference it serves for the health window, says which model and engine
// serve now, signals each swap (Swapped) and the first frame inferred
// (FirstFrame). It is safe for concurrent use.
type Serving struct {
	opts yolo.Options
	// name and version name a model without a manifest (the configured one).
	name, version string

	swapped    chan struct{}
	firstFrame chan struct{}
	firstOnce  sync.Once
	info       atomic.Pointer[models.EngineInfo]

	// mu is read-held for the length of a Detect and write-held by Swap, so a
	// swap waits for the frame in flight and the old engine is idle after it.
	mu  sync.RWMutex
	det *yolo.Detector
	eng models.Engine
	man *manifest.Manifest
	gen uint64 // counts swaps

	hmu sync.Mutex // guards win
	win window
}

// window accumulates the inference figures since the last Mark.
type window struct {
	gen                  uint64 // frames of other generations do not count
	frames, errors, dets uint64
	lat                  []time.Duration // ring of the newest per-frame latencies
	next                 int
}

const latencySamples = 256

var (
	_ models.Detector = (*Serving)(nil)
	_ Swapper         = (*Serving)(nil)
	_ Health          = (*Serving)(nil)
	_ Renamer         = (*Serving)(nil)
	_ CandidateMaker  = (*Serving)(nil)
)

// NewServing serves eng (m may be nil for a model without a manifest). opts are
// the YOLO post-processing settings; a manifest's labels replace opts.Labels
// for the model it describes.
func NewServing(eng models.Engine, m *manifest.Manifest, opts yolo.Options) (*Serving, error) {
	s := &Serving{opts: opts, swapped: make(chan struct{}, 1), firstFrame: make(chan struct{})}
	det, err := s.detector(eng, m)
	if err != nil {
		return nil, fmt.Errorf("update: serving: %w", err)
	}
	s.det, s.eng, s.man = det, eng, m
	info := eng.Info()
	s.info.Store(&info)
	return s, nil
}

// SetName names the model when it has no manifest (the configured model's
// name and version); call it before the Serving is shared.
func (s *Serving) SetName(name, version string) { s.name, s.version = name, version }

// Model names the model serving now: its manifest's name and version, else
// those given to SetName.
func (s *Serving) Model() (name, version string) {
	if m := s.Manifest(); m != nil {
		return m.Name, m.Version
	}
	return s.name, s.version
}

// Labels are the class names of the model serving now: its manifest's,
// else those NewServing was given.
func (s *Serving) Labels() []string {
	if m := s.Manifest(); m != nil && len(m.Labels) > 0 {
		return m.Labels
	}
	return s.opts.Labels
}

// EngineInfo says what the engine serving now runs (taken when it was
// swapped in: an engine is not safe for concurrent use).
func (s *Serving) EngineInfo() models.EngineInfo {
	if p := s.info.Load(); p != nil {
		return *p
	}
	return models.EngineInfo{}
}

// Swapped receives a value after each swap (buffered by one: several swaps
// between two reads make one value).
func (s *Serving) Swapped() <-chan struct{} { return s.swapped }

// FirstFrame is closed after the first successful Detect: a sign of health
// for a new agent version.
func (s *Serving) FirstFrame() <-chan struct{} { return s.firstFrame }

func (s *Serving) detector(eng models.Engine, m *manifest.Manifest) (*yolo.Detector, error) {
	o := s.opts
	if m != nil && len(m.Labels) > 0 {
		o.Labels = m.Labels
	}
	return yolo.NewDetector(eng, o)
}

// Candidate implements CandidateMaker: a detector of eng with the
// post-processing of the model served (labels from m).
func (s *Serving) Candidate(eng models.Engine, m *manifest.Manifest) (models.Detector, error) {
	return s.detector(eng, m)
}

// Detect implements models.Detector on the model now in the slot.
func (s *Serving) Detect(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
	s.mu.RLock()
	if s.det == nil {
		s.mu.RUnlock()
		return nil, errServingClosed
	}
	gen := s.gen
	t0 := time.Now()
	res, err := s.det.Detect(ctx, imgs)
	el := time.Since(t0)
	s.mu.RUnlock()

	if err == nil {
		s.firstOnce.Do(func() { close(s.firstFrame) })
	}
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if gen != s.win.gen {
		return res, err // served by a model swapped out since
	}
	if err != nil {
		if ctx.Err() == nil { // a cancelled frame says nothing about the model
			s.win.errors++
		}
		return res, err
	}
	n := max(len(imgs), 1)
	s.win.frames += uint64(len(imgs))
	for _, d := range res {
		s.win.dets += uint64(len(d))
	}
	per := el / time.Duration(n)
	for range len(imgs) {
		if len(s.win.lat) < latencySamples {
			s.win.lat = append(s.win.lat, per)
		} else {
			s.win.lat[s.win.next] = per
			s.win.next = (s.win.next + 1) % latencySamples
		}
	}
	return res, nil
}

// Swap implements Swapper: it waits for the frame in flight, if any, then
// serves eng, and starts a new health window that counts only eng's frames.
// It does not close the old engine.
func (s *Serving) Swap(ctx context.Context, eng models.Engine, m *manifest.Manifest) (models.Engine, error) {
	det, err := s.detector(eng, m)
	if err != nil {
		return nil, fmt.Errorf("update: swap: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("update: swap: %w", err)
	}
	info := eng.Info()
	s.mu.Lock()
	old := s.eng
	s.det, s.eng, s.man = det, eng, m
	s.gen++
	s.hmu.Lock()
	s.win = window{gen: s.gen}
	s.hmu.Unlock()
	s.info.Store(&info)
	s.mu.Unlock()
	select {
	case s.swapped <- struct{}{}:
	default:
	}
	return old, nil
}

// Rename implements Renamer: the engine serving stays, under manifest m
// (its name, version and labels), and Swapped is told.
func (s *Serving) Rename(m *manifest.Manifest) error {
	s.mu.Lock()
	if s.eng == nil {
		s.mu.Unlock()
		return errServingClosed
	}
	det, err := s.detector(s.eng, m)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("update: rename: %w", err)
	}
	s.det, s.man = det, m
	s.mu.Unlock()
	select {
	case s.swapped <- struct{}{}:
	default:
	}
	return nil
}

// Manifest is the manifest of the model being served (nil if it has none).
func (s *Serving) Manifest() *manifest.Manifest {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.man
}

// Engine is the engine being served.
func (s *Serving) Engine() models.Engine {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.eng
}

// Peek implements Health.
func (s *Serving) Peek() Stats {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return s.win.stats()
}

// Mark implements Health.
func (s *Serving) Mark() Stats {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	st := s.win.stats()
	s.win = window{gen: s.win.gen}
	return st
}

// Close closes the engine being served; Detect fails afterwards.
func (s *Serving) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eng == nil {
		return nil
	}
	err := s.eng.Close()
	s.eng = nil
	s.det = nil
	return err
}

func (w *window) stats() Stats {
	st := Stats{Frames: w.frames, Errors: w.errors, Detections: w.dets}
	if len(w.lat) > 0 {
		l := slices.Clone(w.lat)
		slices.Sort(l)
		st.P50 = l[len(l)/2]
	}
	return st
}

// errServingClosed is returned by Detect on a closed slot.
var errServingClosed = errors.New("update: serving: closed")
