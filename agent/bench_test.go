package agent

import (
	"context"
	"fmt"
	"image"
	"os"
	"testing"
	"time"

	"edgefleet/agent/agenttest"
	"edgefleet/agent/capture"
	"edgefleet/fleet/api"
	"edgefleet/models"
	"edgefleet/models/backend"
	"edgefleet/models/meta"
	"edgefleet/models/modeltest"
	"edgefleet/models/yolo"
)

// BenchmarkPipelineBatch measures frames processed per second by the
// pipeline with two synthetic cameras that always have a frame waiting,
// the real yolov8n int8 model on the pure-Go engine, one frame per invoke
// against two frames (one per camera) per invoke. It is what decides
// whether model.batch is worth turning on.
func BenchmarkPipelineBatch(b *testing.B) {
	path := modeltest.Path(b, "models", "yolov8n_full_integer_quant.tflite")
	images := modeltest.Path(b, "images")
	mb, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	labels, _, _ := meta.Labels("", mb)
	sprites, err := capture.LoadSprites(images)
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{1, 2} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			eng, err := backend.Open(ctx, "go", mb, models.Options{Threads: 1})
			if err != nil {
				b.Skipf("engine: %v", err)
			}
			defer eng.Close()
			det, err := yolo.NewDetector(eng, yolo.Options{Labels: labels, Batch: batch})
			if err != nil {
				b.Fatal(err)
			}
			const perOp = 8 // frames processed per iteration
			var processed, events uint64
			var elapsed time.Duration
			for b.Loop() {
				sp := &agenttest.MemSpool{}
				cams := []Camera{
					{ID: "a", Source: capture.NewSynth(capture.SynthOptions{FPS: 200, Seed: 1, Sprites: sprites})},
					{ID: "b", Source: capture.NewSynth(capture.SynthOptions{FPS: 200, Seed: 2, Sprites: sprites})},
				}
				p, err := NewPipeline(PipelineOptions{Cameras: cams, Detector: det, Spool: sp, Batch: batch, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- p.Run(rctx) }()
				for p.lat.count() < perOp/batch {
					time.Sleep(5 * time.Millisecond)
				}
				elapsed += time.Since(start)
				cancel()
				<-done
				processed += uint64(perOp)
				events += p.Events()
			}
			b.ReportMetric(float64(processed)/elapsed.Seconds(), "frames/s")
			b.ReportMetric(float64(events)/float64(processed), "events/frame")
		})
	}
}

// signalSpool tells the benchmark when an Append has happened.
type signalSpool struct {
	agenttest.MemSpool
	appended chan struct{}
}

func (s *signalSpool) Append(ctx context.Context, events ...api.Event) (uint64, uint64, error) {
	f, l, err := s.MemSpool.Append(ctx, events...)
	s.appended <- struct{}{}
	return f, l, err
}

// BenchmarkPipelineFrame measures the pipeline's own cost per frame: one
// frame handed from a camera to a detector that answers at once with five
// detections, filtered (region and class), turned into events and appended
// to an in-memory spool; ns/op is that whole trip.
func BenchmarkPipelineFrame(b *testing.B) {
	det := agenttest.DetectorFunc(func(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
		out := make([][]models.Detection, len(imgs))
		for i := range imgs {
			for k := range 5 {
				out[i] = append(out[i], models.Detection{ClassID: k, Label: "cup", Score: 0.5, Box: [4]float32{float32(k * 10), 10, float32(k*10 + 20), 40}})
			}
		}
		return out, nil
	})
	frame := capture.Frame{Image: image.NewRGBA(image.Rect(0, 0, 64, 48)), Time: time.Now()}
	src := agenttest.NewChanSource()
	sp := &signalSpool{appended: make(chan struct{}, 1)}
	p, err := NewPipeline(PipelineOptions{
		Cameras: []Camera{{ID: "a", Source: src, Filter: Filter{
			Region: [][2]float64{{0, 0}, {1, 0}, {1, 1}, {0, 1}}, Classes: map[string]bool{"cup": true}}}},
		Detector: det, Spool: sp, Metrics: NewMetrics(nil), Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	start := time.Now()
	for b.Loop() {
		src.Send(ctx, frame)
		<-sp.appended
	}
	el := time.Since(start).Seconds()
	src.Close()
	<-done
	b.ReportMetric(float64(p.Events())/el, "events/s")
}
