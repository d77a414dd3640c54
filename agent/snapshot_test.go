package agent

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"testing"
	"time"

	"edgefleet/agent/agenttest"
	"edgefleet/agent/capture"
	"edgefleet/internal/testutil"
	"edgefleet/models"
)

// TestSnapshotJPEG: the JPEG fits the cap, by quality and then by size;
// a cap nothing fits, a camera without a frame and an unknown camera are
// errors of their own.
func TestSnapshotJPEG(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	det := agenttest.DetectorFunc(func(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
		return make([][]models.Detection, len(imgs)), nil
	})
	a, err := New(Options{
		DeviceID: "box-1", Detector: det, Spool: &agenttest.MemSpool{}, Logger: quiet,
		Cameras: []Camera{
			{ID: "belt", Source: capture.NewSynth(capture.SynthOptions{Width: 640, Height: 480, FPS: 20, Seed: 3})},
			{ID: "idle", Source: agenttest.NewChanSource()},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testutil.WaitFor(t, "a frame from belt", 10*time.Second, func() bool {
		_, err := a.SnapshotJPEG("belt", 1<<20)
		return err == nil
	})
	full, err := a.SnapshotJPEG("belt", 1<<20)
	if err != nil || full.Width != 640 || full.Height != 480 || full.Time.IsZero() {
		t.Fatalf("full size: %dx%d at %v, %v", full.Width, full.Height, full.Time, err)
	}
	for _, limit := range []int{len(full.JPEG) - 1, 8000, 3000} {
		s, err := a.SnapshotJPEG("belt", limit)
		if err != nil {
			t.Fatalf("cap %d: %v", limit, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(s.JPEG))
		if err != nil || len(s.JPEG) > limit || img.Bounds().Dx() != s.Width || img.Bounds().Dy() != s.Height {
			t.Fatalf("cap %d: %d bytes, %v (%dx%d), %v", limit, len(s.JPEG), img.Bounds(), s.Width, s.Height, err)
		}
		if limit < 4000 && s.Width >= 640 {
			t.Errorf("cap %d met without scaling down: %dx%d", limit, s.Width, s.Height)
		}
	}
	for _, tt := range []struct {
		camera string
		limit  int
		want   error
	}{
		{"belt", 100, ErrTooLarge}, {"idle", 1 << 20, ErrNoFrame}, {"nope", 1 << 20, ErrUnknownCamera},
	} {
		if _, err := a.SnapshotJPEG(tt.camera, tt.limit); !errors.Is(err, tt.want) {
			t.Errorf("%s cap %d: %v, want %v", tt.camera, tt.limit, err, tt.want)
		}
	}
}
