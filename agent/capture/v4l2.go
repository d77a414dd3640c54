package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"sync"
	"time"
)

// Pixel formats a V4L2 camera can be asked for.
const (
	FormatMJPEG = "mjpeg"
	FormatYUYV  = "yuyv"
)

// DeviceConfig is what a V4L2 camera is asked for. The device may grant a
// different size; the granted one is returned by the opener.
type DeviceConfig struct {
	Path          string
	Format        string // FormatMJPEG or FormatYUYV
	Width, Height int
	FPS           float64
}

// Device is the thin hardware edge of a V4L2 camera: a streaming device
// that yields raw frames in the format it was opened with.
type Device interface {
	// ReadFrame waits up to timeout for the next frame and returns a copy of
	// its bytes; ErrFrameTimeout when none came.
	ReadFrame(timeout time.Duration) ([]byte, error)
	Close() error
}

// ErrFrameTimeout is returned by Device.ReadFrame when no frame arrived in time.
var ErrFrameTimeout = errors.New("capture: no frame within timeout")

// DeviceOpener opens a device and reports the format and size it granted.
type DeviceOpener func(cfg DeviceConfig) (Device, DeviceConfig, error)

// V4L2 reads a camera device, converting its frames to images. When the
// device fails or disappears (unplugged, driver reset) it closes it, reports
// the camera down and reopens it with backoff until it is back. Not safe for
// concurrent use, except Close and Status.
type V4L2 struct {
	cfg     DeviceConfig
	open    DeviceOpener
	backoff Backoff
	// stall is how long without a frame counts as a failure.
	stall time.Duration
	health
	c closer

	mu      sync.Mutex // guards dev against Close
	dev     Device
	granted DeviceConfig
	fails   int
	// Reopens counts how often the device was reopened after a failure.
	Reopens int
}

var _ Reporter = (*V4L2)(nil)

// V4L2Options configure NewV4L2.
type V4L2Options struct {
	// Open defaults to the real V4L2 driver (github.com/blackjack/webcam);
	// tests pass a fake device here.
	Open    DeviceOpener
	Backoff Backoff
	// Stall is how long without frames counts as the device being down;
	// default 5s.
	Stall time.Duration
}

// NewV4L2 returns a source for a V4L2 device; it opens the device on the first Next.
func NewV4L2(cfg DeviceConfig, opts V4L2Options) *V4L2 {
	if opts.Open == nil {
		opts.Open = openWebcam
	}
	if opts.Stall <= 0 {
		opts.Stall = 5 * time.Second
	}
	return &V4L2{cfg: cfg, open: opts.Open, backoff: opts.Backoff, stall: opts.Stall, c: newCloser()}
}

// maxBadFrames corrupt frames in a row count as a device failure.
const maxBadFrames = 30

// pollInterval bounds how long a ReadFrame blocks before ctx is checked again.
const pollInterval = 200 * time.Millisecond

// Next returns the next frame, reopening the device as needed.
func (v *V4L2) Next(ctx context.Context) (Frame, error) {
	var last time.Time
	bad := 0 // corrupt frames in a row
	for {
		if v.c.closed() {
			return Frame{}, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return Frame{}, err
		}
		dev := v.device()
		if dev == nil {
			d, granted, err := v.open(v.cfg)
			if err != nil {
				if err := v.fail(ctx, fmt.Errorf("capture: v4l2 %s: open: %w", v.cfg.Path, err)); err != nil {
					return Frame{}, err
				}
				continue
			}
			v.mu.Lock()
			if v.c.closed() {
				v.mu.Unlock()
				d.Close()
				return Frame{}, ErrClosed
			}
			v.dev, v.granted, dev = d, granted, d
			v.mu.Unlock()
			last = time.Now()
		}
		if last.IsZero() {
			last = time.Now()
		}
		raw, err := dev.ReadFrame(pollInterval)
		if errors.Is(err, ErrFrameTimeout) {
			if time.Since(last) < v.stall {
				continue
			}
			err = fmt.Errorf("no frame for %v", v.stall)
		}
		if err != nil {
			v.drop()
			if err := v.fail(ctx, fmt.Errorf("capture: v4l2 %s: read: %w", v.cfg.Path, err)); err != nil {
				return Frame{}, err
			}
			continue
		}
		last = time.Now()
		img, err := decodeRaw(raw, v.granted)
		if err != nil {
			// A corrupt frame is not a dead camera; a run of them is.
			if bad++; bad < maxBadFrames {
				continue
			}
			bad = 0
			v.drop()
			if err := v.fail(ctx, fmt.Errorf("capture: v4l2 %s: %d bad frames in a row: %w", v.cfg.Path, maxBadFrames, err)); err != nil {
				return Frame{}, err
			}
			continue
		}
		bad = 0
		v.fails = 0
		v.health.up()
		return Frame{Image: img, Time: last}, nil
	}
}

// fail reports the camera down and waits out the backoff.
func (v *V4L2) fail(ctx context.Context, err error) error {
	if v.c.closed() {
		return ErrClosed
	}
	v.health.down(err)
	d := v.backoff.delay(v.fails)
	v.fails++
	v.Reopens++
	ctx, cancel := v.c.bind(ctx)
	defer cancel()
	if err := sleep(ctx, d); err != nil {
		if v.c.closed() {
			return ErrClosed
		}
		return err
	}
	return nil
}

func (v *V4L2) device() Device {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dev
}

func (v *V4L2) drop() {
	v.mu.Lock()
	d := v.dev
	v.dev = nil
	v.mu.Unlock()
	if d != nil {
		d.Close()
	}
}

// Close closes the device; Next then returns ErrClosed.
func (v *V4L2) Close() error {
	v.c.close()
	v.drop()
	return nil
}

// decodeRaw turns a raw device frame into an image.
func decodeRaw(raw []byte, f DeviceConfig) (image.Image, error) {
	switch f.Format {
	case FormatYUYV:
		return YUYVToRGBA(raw, f.Width, f.Height)
	case FormatMJPEG:
		if len(raw) > MaxJPEG {
			return nil, fmt.Errorf("capture: mjpeg frame of %d bytes", len(raw))
		}
		img, err := jpeg.Decode(bytes.NewReader(withHuffman(raw)))
		if err != nil {
			return nil, fmt.Errorf("capture: mjpeg frame: %w", err)
		}
		return img, nil
	}
	return nil, fmt.Errorf("capture: unknown pixel format %q", f.Format)
}
