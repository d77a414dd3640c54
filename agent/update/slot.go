package update

import (
	"context"
	"errors"
	"fmt"
	"image"
	"slices"
	"sync"
	"time"

	"edgefleet/models"
	"edgefleet/models/manifest"
	"edgefleet/models/yolo"
)

// Slot is the agent's detector with a replaceable model: the pipeline calls
// Detect, the Executor calls Swap between two frames, and Slot measures the
// inference it serves for the health window. It is safe for concurrent use.
type Slot struct {
	opts yolo.Options

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
	_ models.Detector = (*Slot)(nil)
	_ Swapper         = (*Slot)(nil)
	_ Health          = (*Slot)(nil)
)

// NewSlot serves eng (m may be nil for a model without a manifest). opts are
// the YOLO post-processing settings; a manifest's labels replace opts.Labels
// for the model it describes.
func NewSlot(eng models.Engine, m *manifest.Manifest, opts yolo.Options) (*Slot, error) {
	s := &Slot{opts: opts}
	det, err := s.detector(eng, m)
	if err != nil {
		return nil, fmt.Errorf("update: slot: %w", err)
	}
	s.det, s.eng, s.man = det, eng, m
	return s, nil
}

func (s *Slot) detector(eng models.Engine, m *manifest.Manifest) (*yolo.Detector, error) {
	o := s.opts
	if m != nil && len(m.Labels) > 0 {
		o.Labels = m.Labels
	}
	return yolo.NewDetector(eng, o)
}

// Detect implements models.Detector on the model now in the slot.
func (s *Slot) Detect(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
	s.mu.RLock()
	if s.det == nil {
		s.mu.RUnlock()
		return nil, errSlotClosed
	}
	gen := s.gen
	t0 := time.Now()
	res, err := s.det.Detect(ctx, imgs)
	el := time.Since(t0)
	s.mu.RUnlock()

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
func (s *Slot) Swap(ctx context.Context, eng models.Engine, m *manifest.Manifest) (models.Engine, error) {
	det, err := s.detector(eng, m)
	if err != nil {
		return nil, fmt.Errorf("update: swap: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("update: swap: %w", err)
	}
	s.mu.Lock()
	old := s.eng
	s.det, s.eng, s.man = det, eng, m
	s.gen++
	s.hmu.Lock()
	s.win = window{gen: s.gen}
	s.hmu.Unlock()
	s.mu.Unlock()
	return old, nil
}

// Manifest is the manifest of the model being served (nil if it has none).
func (s *Slot) Manifest() *manifest.Manifest {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.man
}

// Engine is the engine being served.
func (s *Slot) Engine() models.Engine {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.eng
}

// Peek implements Health.
func (s *Slot) Peek() Stats {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return s.win.stats()
}

// Mark implements Health.
func (s *Slot) Mark() Stats {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	st := s.win.stats()
	s.win = window{gen: s.win.gen}
	return st
}

// Close closes the engine being served; Detect fails afterwards.
func (s *Slot) Close() error {
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

// errSlotClosed is returned by Detect on a closed slot.
var errSlotClosed = errors.New("update: slot closed")
