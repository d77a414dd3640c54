// Package agenttest has in-memory twins of the agent's collaborators for
// tests: a spool, a detector made from a function, and a frame source fed
// by the test.
package agenttest

import (
	"context"
	"errors"
	"image"
	"sync"

	"edgefleet/agent/capture"
	"edgefleet/fleet/api"
	"edgefleet/models"
)

// MemSpool is an in-memory agent.Spool: Append assigns seqs from 1 up.
// Safe for concurrent use.
type MemSpool struct {
	mu     sync.Mutex
	events []api.Event
	// Err, when set, is returned by Append instead of storing.
	Err error
}

// Append stores events and assigns their seqs.
func (s *MemSpool) Append(ctx context.Context, events ...api.Event) (first, last uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return 0, 0, s.Err
	}
	first = uint64(len(s.events)) + 1
	for _, e := range events {
		e.Seq = uint64(len(s.events)) + 1
		s.events = append(s.events, e)
	}
	return first, uint64(len(s.events)), nil
}

// Events returns a copy of everything appended.
func (s *MemSpool) Events() []api.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]api.Event(nil), s.events...)
}

// DetectorFunc adapts a function to models.Detector.
type DetectorFunc func(ctx context.Context, imgs []image.Image) ([][]models.Detection, error)

// Detect calls f.
func (f DetectorFunc) Detect(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
	return f(ctx, imgs)
}

// ChanSource is a capture.Source that yields the frames a test sends.
// Closing it ends Next with capture.ErrClosed.
type ChanSource struct {
	ch   chan capture.Frame
	once sync.Once
	done chan struct{}
}

// NewChanSource returns an empty source.
func NewChanSource() *ChanSource {
	return &ChanSource{ch: make(chan capture.Frame), done: make(chan struct{})}
}

// Send blocks until the consumer has taken f.
func (s *ChanSource) Send(ctx context.Context, f capture.Frame) error {
	select {
	case s.ch <- f:
		return nil
	case <-s.done:
		return capture.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Next returns the next frame sent.
func (s *ChanSource) Next(ctx context.Context) (capture.Frame, error) {
	select {
	case f := <-s.ch:
		return f, nil
	case <-s.done:
		return capture.Frame{}, capture.ErrClosed
	case <-ctx.Done():
		return capture.Frame{}, ctx.Err()
	}
}

// Close ends the source.
func (s *ChanSource) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// ErrInjected is a failure tests inject.
var ErrInjected = errors.New("agenttest: injected failure")
