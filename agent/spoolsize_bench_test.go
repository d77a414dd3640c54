package agent

import (
	"context"
	"encoding/json"
	"image"
	"path/filepath"
	"testing"
	"time"

	"edgefleet/agent/agenttest"
	"edgefleet/agent/analytics"
	"edgefleet/agent/capture"
	"edgefleet/agent/spool"
	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models"
)

// BenchmarkSpoolPerHour is the spool's growth for one 5 fps belt camera
// with a counting line, with every detection spooled (detections: all),
// those of one frame a second (sampled) and analytics events only (off). The detector is the
// belt's ground truth (every object found in every frame, as a good model
// on a belt does), so the figure depends on the scene, not on a model. One
// iteration is one minute of belt (300 frames) appended to a real spool in
// a temporary folder; spool-B/h is its Stats().Bytes scaled to an hour,
// json-B/h the events' JSON size (what the link carries, snapshots
// included) scaled the same way.
func BenchmarkSpoolPerHour(b *testing.B) {
	const frames, fps = 300, 5
	for _, mode := range []string{DetectionsAll, DetectionsSampled, DetectionsOff} {
		b.Run("detections="+mode, func(b *testing.B) {
			var spoolBytes, jsonBytes, events float64
			for b.Loop() {
				sb, jb, n := beltMinute(b, mode, frames, fps)
				spoolBytes += sb
				jsonBytes += jb
				events += n
			}
			perHour := 3600.0 * fps / frames / float64(b.N)
			b.ReportMetric(spoolBytes*perHour, "spool-B/h")
			b.ReportMetric(jsonBytes*perHour, "json-B/h")
			b.ReportMetric(events*perHour, "events/h")
		})
	}
}

// beltMinute runs frames of the synthetic belt through a pipeline into a
// real spool and returns the spool's bytes, the events' JSON bytes and
// their count.
func beltMinute(b *testing.B, mode string, frames, fps int) (spoolBytes, jsonBytes, events float64) {
	ctx := context.Background()
	sp, err := spool.Open(filepath.Join(b.TempDir(), "spool.db"), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	mem := &agenttest.MemSpool{}
	belt := capture.NewSynth(capture.SynthOptions{Width: 640, Height: 480, FPS: float64(fps), Seed: 3})
	n := 0
	detected := make(chan struct{}, 1)
	det := agenttest.DetectorFunc(func(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
		defer func() { detected <- struct{}{} }()
		var out []models.Detection
		for _, o := range belt.Objects(n) {
			r := o.Rect.Intersect(image.Rect(0, 0, 640, 480))
			out = append(out, models.Detection{Label: "part", Score: 0.9, Box: [4]float32{float32(r.Min.X), float32(r.Min.Y), float32(r.Max.X), float32(r.Max.Y)}})
		}
		return [][]models.Detection{out}, nil
	})
	src := agenttest.NewChanSource()
	p, err := NewPipeline(PipelineOptions{
		Cameras: []Camera{{ID: "belt", Source: src, Detections: mode, DetectionsEvery: time.Second, Tracking: &Tracking{
			Analytics: analytics.Config{Lines: []analytics.Line{{ID: "exit", A: analytics.Point{0.5, 1}, B: analytics.Point{0.5, 0}}}},
		}}},
		Detector: det, Spool: teeSpool{sp, mem}, Model: "yolov8n", ModelVersion: "1", Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t0 := time.UnixMilli(1_700_000_000_000)
	for n = 0; n < frames; n++ {
		at := t0.Add(time.Duration(n) * time.Second / time.Duration(fps))
		if err := src.Send(ctx, capture.Frame{Image: belt.Render(n), Time: at}); err != nil {
			b.Fatal(err)
		}
		<-detected
		testutil.WaitFor(b, "frame processed", time.Minute, func() bool { return p.Counters()[0].LastFrame.Equal(at) })
	}
	src.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	for _, e := range mem.Events() {
		j, _ := json.Marshal(e)
		jsonBytes += float64(len(j))
	}
	return float64(sp.Stats().Bytes), jsonBytes, float64(len(mem.Events()))
}

// teeSpool appends to a real spool and keeps a copy in memory.
type teeSpool struct {
	*spool.Spool
	mem *agenttest.MemSpool
}

func (t teeSpool) Append(ctx context.Context, events ...api.Event) (uint64, uint64, error) {
	t.mem.Append(ctx, events...)
	return t.Spool.Append(ctx, events...)
}
