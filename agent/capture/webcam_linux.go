package capture

import (
	"errors"
	"fmt"
	"time"

	"github.com/blackjack/webcam"
)

// FourCC codes of the formats the agent asks for.
const (
	fourccMJPEG webcam.PixelFormat = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24
	fourccYUYV  webcam.PixelFormat = 'Y' | 'U'<<8 | 'Y'<<16 | 'V'<<24
)

// webcamDevice is the real V4L2 device. This file is the only code that
// touches the hardware; it cannot be tested here and is kept thin.
type webcamDevice struct {
	cam *webcam.Webcam
}

func openWebcam(cfg DeviceConfig) (Device, DeviceConfig, error) {
	cam, err := webcam.Open(cfg.Path)
	if err != nil {
		return nil, cfg, err
	}
	want := fourccMJPEG
	if cfg.Format == FormatYUYV {
		want = fourccYUYV
	}
	if _, ok := cam.GetSupportedFormats()[want]; !ok {
		cam.Close()
		return nil, cfg, fmt.Errorf("device does not offer format %s", cfg.Format)
	}
	f, w, h, err := cam.SetImageFormat(want, uint32(cfg.Width), uint32(cfg.Height))
	if err != nil {
		cam.Close()
		return nil, cfg, fmt.Errorf("set format %s %dx%d: %w", cfg.Format, cfg.Width, cfg.Height, err)
	}
	if f != want {
		cam.Close()
		return nil, cfg, fmt.Errorf("device granted pixel format %08x instead of %s", uint32(f), cfg.Format)
	}
	if cfg.FPS > 0 {
		// Not every driver supports setting the rate; the pipeline copes.
		_ = cam.SetFramerate(float32(cfg.FPS))
	}
	if err := cam.SetBufferCount(2); err != nil {
		cam.Close()
		return nil, cfg, fmt.Errorf("set buffer count: %w", err)
	}
	if err := cam.StartStreaming(); err != nil {
		cam.Close()
		return nil, cfg, fmt.Errorf("start streaming: %w", err)
	}
	granted := cfg
	granted.Width, granted.Height = int(w), int(h)
	return &webcamDevice{cam: cam}, granted, nil
}

func (d *webcamDevice) ReadFrame(timeout time.Duration) ([]byte, error) {
	// The driver waits in whole seconds; 0 would spin.
	err := d.cam.WaitForFrame(uint32(max(timeout/time.Second, 1)))
	var te *webcam.Timeout
	if errors.As(err, &te) {
		return nil, ErrFrameTimeout
	}
	if err != nil {
		return nil, err
	}
	b, err := d.cam.ReadFrame()
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, ErrFrameTimeout
	}
	// ReadFrame's slice is the driver's mmap buffer, reused for later frames.
	return append([]byte(nil), b...), nil
}

func (d *webcamDevice) Close() error { return d.cam.Close() }
