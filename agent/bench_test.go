package agent

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"edgefleet/agent/agenttest"
	"edgefleet/agent/capture"
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
