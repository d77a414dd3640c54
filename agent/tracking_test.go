package agent

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"testing"
	"time"

	"edgefleet/agent/agenttest"
	"edgefleet/agent/analytics"
	"edgefleet/agent/track"
	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models"
)

// TestPipelineTracking runs one object across a line through the pipeline
// with each detections mode: one line_cross, one track_end with its
// snapshot, the counters in Counters, and the raw detections the mode lets
// through.
func TestPipelineTracking(t *testing.T) {
	const frames = 40
	tests := []struct {
		mode  string
		every time.Duration
		dets  int
	}{
		{DetectionsAll, 0, frames},
		{DetectionsSampled, time.Second, 8}, // frames 200 ms apart: one in five
		{DetectionsOff, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			src := agenttest.NewChanSource()
			// One box moving right across a 200×100 frame, 4 px a frame.
			det := agenttest.DetectorFunc(func(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
				out := make([][]models.Detection, len(imgs))
				for i, img := range imgs {
					x := float32(10 + 4*frameNumber(img))
					out[i] = []models.Detection{{ClassID: 3, Label: "box", Score: 0.7 + float32(frameNumber(img)%7)*0.03, Box: [4]float32{x, 30, x + 20, 60}}}
				}
				return out, nil
			})
			sp := &agenttest.MemSpool{}
			p, err := NewPipeline(PipelineOptions{
				Cameras: []Camera{{ID: "belt", Source: src, Detections: tc.mode, DetectionsEvery: tc.every, Tracking: &Tracking{
					Analytics: analytics.Config{Lines: []analytics.Line{{ID: "exit", A: analytics.Point{0.5, 1}, B: analytics.Point{0.5, 0}}}},
				}}},
				Detector: det, Spool: sp, Model: "m", ModelVersion: "1", Logger: quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			for n := 0; n < frames; n++ {
				f := numbered(n)
				f.Time = time.UnixMilli(1_700_000_000_000 + int64(n)*200)
				if err := src.Send(ctx, f); err != nil {
					t.Fatal(err)
				}
				testutil.WaitFor(t, "frame processed", 10*time.Second, func() bool { return p.Counters()[0].LastFrame.Equal(f.Time) })
			}
			c := p.Counters()[0]
			if len(c.Lines) != 1 || c.Lines[0] != (api.LineCount{Line: "exit", Direction: "in", Label: "box", Count: 1}) {
				t.Errorf("line counters %+v", c.Lines)
			}
			src.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			byType := map[string][]api.Event{}
			for _, e := range sp.Events() {
				if err := e.ValidateAnalytics(); err != nil {
					t.Fatalf("event %d: %v", e.Seq, err)
				}
				if e.CameraID != "belt" || e.Model != "m" {
					t.Fatalf("event %d not stamped: %+v", e.Seq, e)
				}
				byType[e.Type] = append(byType[e.Type], e)
			}
			if n := len(byType[api.TypeDetection]); n != tc.dets {
				t.Errorf("%d detections spooled, want %d", n, tc.dets)
			}
			lc := byType[api.TypeLineCross]
			if len(lc) != 1 || lc[0].Line.Direction != api.DirectionIn || lc[0].Label != "box" {
				t.Fatalf("line crossings %+v", lc)
			}
			te := byType[api.TypeTrackEnd]
			if len(te) != 1 || te[0].Track.ID != lc[0].Track.ID || te[0].Track.Frames != frames {
				t.Fatalf("track ends %+v", te)
			}
			checkSnapshot(t, te[0])
		})
	}
}

// checkSnapshot: a crop and a thumbnail that decode, within the cap, taken
// at the best frame (the best score).
func checkSnapshot(t *testing.T, e api.Event) {
	t.Helper()
	s := e.Snapshot
	if s == nil {
		t.Fatal("track_end without a snapshot")
	}
	for name, b := range map[string][]byte{"crop": s.Crop, "thumb": s.Thumb} {
		if len(b) == 0 || len(b) > api.MaxEventSnapshot {
			t.Fatalf("%s: %d bytes", name, len(b))
		}
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "thumb" && img.Bounds().Dx() != 100 {
			t.Errorf("thumbnail %v wide, want the frame's 100 (no upscaling)", img.Bounds())
		}
	}
	if e.Score < 0.88 {
		t.Errorf("best score %v, want the best frame's (0.88)", e.Score)
	}
}

// TestSnapshotFits: a noisy large frame still gives snapshots within the cap.
func TestSnapshotFits(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 1920, 1080))
	for i := range img.Pix {
		img.Pix[i] = uint8(i*7919 + i/13)
	}
	var s shots
	s.take(2, img, [4]float32{100, 100, 1800, 1000}, 1, "x", 0.9, 5)
	snap, err := s.encode(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Crop) > api.MaxEventSnapshot || len(snap.Thumb) > api.MaxEventSnapshot || snap.TimeUs != 5 {
		t.Fatalf("crop %d thumb %d bytes", len(snap.Crop), len(snap.Thumb))
	}
	if again, _ := s.encode(2); again != nil {
		t.Fatal("a slot's snapshot was encoded twice")
	}
}

// BenchmarkTrackingFrame is the analytics cost per frame on top of
// detection: tracker, counter and snapshots for 10 objects moving on a
// 640×480 frame with a line; 0 allocs when no track improves.
func BenchmarkTrackingFrame(b *testing.B) {
	c := &camState{Camera: Camera{ID: "belt"}}
	c.trk = newTracking(&Tracking{Tracker: track.Config{}, Analytics: analytics.Config{Lines: []analytics.Line{{ID: "l", A: analytics.Point{0.5, 1}, B: analytics.Point{0.5, 0}}}}})
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	dets := func(n int) []models.Detection {
		var out []models.Detection
		for i := 0; i < 10; i++ {
			// back and forth, 3 px a frame: tracks live on
			x := float32(20 + i*50 + max((n*3)%240, 240-(n*3)%240) - 120)
			out = append(out, models.Detection{ClassID: i % 3, Label: "c", Score: 0.8, Box: [4]float32{x, float32(i * 40), x + 40, float32(i*40 + 40)}})
		}
		return out
	}
	frames := make([][]models.Detection, 160)
	for i := range frames {
		frames[i] = dets(i)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < len(frames); i++ {
		c.analyze(img, t0.Add(time.Duration(i)*200*time.Millisecond), frames[i], "m", "1")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.analyze(img, t0.Add(time.Duration(len(frames)+i)*200*time.Millisecond), frames[i%len(frames)], "m", "1")
	}
}
