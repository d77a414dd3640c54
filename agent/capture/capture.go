// Package capture reads camera frames for the edge agent. A Source yields
// decoded RGB-capable images with their capture time; implementations read
// V4L2 devices (MJPEG or YUYV), image files and folders, MJPEG streams over
// HTTP, and a deterministic synthetic belt scene for demos and tests.
//
// Sources that can lose their camera (V4L2, MJPEG over HTTP) retry with
// backoff on their own and report through Status whether the camera is up.
package capture

import (
	"context"
	"errors"
	"image"
	"math/rand/v2"
	"sync"
	"time"
)

// Frame is one captured picture.
type Frame struct {
	Image image.Image
	// Time is when the frame was captured (or produced).
	Time time.Time
}

// Source yields frames. Next blocks until the next frame is available, the
// source ends (io.EOF), or ctx is done. A Source is used by one goroutine;
// Close may be called from any goroutine and more than once.
type Source interface {
	Next(ctx context.Context) (Frame, error)
	Close() error
}

// Status says whether a camera delivers frames.
type Status struct {
	Up bool
	// Err is the last error while the camera is down.
	Err string
}

// Reporter is implemented by sources that can go down and come back.
type Reporter interface {
	Status() Status
}

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("capture: source closed")

// health is the shared Status bookkeeping for sources that retry.
type health struct {
	mu  sync.Mutex
	st  Status
	set bool
}

func (h *health) up() {
	h.mu.Lock()
	h.st, h.set = Status{Up: true}, true
	h.mu.Unlock()
}

func (h *health) down(err error) {
	h.mu.Lock()
	h.st, h.set = Status{Err: err.Error()}, true
	h.mu.Unlock()
}

// Status reports the last known state; a source starts as down until its
// first frame.
func (h *health) Status() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.set {
		return Status{Err: "no frame yet"}
	}
	return h.st
}

// Backoff is the retry schedule of sources that reconnect: the wait starts at
// Min, doubles up to Max, and each wait is jittered by up to a quarter.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff is used where a Backoff is left zero.
var DefaultBackoff = Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}

// delay returns the wait before retry number n (0-based).
func (b Backoff) delay(n int) time.Duration {
	if b.Min <= 0 {
		b = DefaultBackoff
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	d := b.Min
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pacer spaces frames at a fixed rate without drifting; when the consumer
// falls behind it skips ahead rather than bursting.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(fps float64) *pacer {
	if fps <= 0 {
		fps = 1
	}
	return &pacer{interval: time.Duration(float64(time.Second) / fps)}
}

// wait blocks until the next frame is due and returns its time.
func (p *pacer) wait(ctx context.Context) (time.Time, error) {
	now := time.Now()
	if p.next.IsZero() || now.Sub(p.next) > p.interval {
		p.next = now
	}
	if d := p.next.Sub(now); d > 0 {
		if err := sleep(ctx, d); err != nil {
			return time.Time{}, err
		}
	} else if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	t := p.next
	p.next = p.next.Add(p.interval)
	return t, nil
}

// closer makes Close idempotent and lets Next notice it.
type closer struct {
	once sync.Once
	done chan struct{}
}

func newCloser() closer { return closer{done: make(chan struct{})} }

func (c *closer) close() bool {
	first := false
	c.once.Do(func() { close(c.done); first = true })
	return first
}

func (c *closer) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// bind returns a context that is also cancelled by Close.
func (c *closer) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctxOf(c.done), cancel)
	return ctx, func() { stop(); cancel() }
}

// ctxOf turns a done channel into a context.
func ctxOf(done <-chan struct{}) context.Context { return doneCtx(done) }

type doneCtx <-chan struct{}

func (d doneCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (d doneCtx) Done() <-chan struct{}       { return d }
func (d doneCtx) Value(any) any               { return nil }
func (d doneCtx) Err() error {
	select {
	case <-d:
		return context.Canceled
	default:
		return nil
	}
}
