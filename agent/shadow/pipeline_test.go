package shadow_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/agent"
	"edgefleet/agent/agenttest"
	"edgefleet/agent/capture"
	"edgefleet/agent/shadow"
	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models"
	"edgefleet/models/backend"
	"edgefleet/models/meta"
	"edgefleet/models/modeltest"
	"edgefleet/models/yolo"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// detector opens a test model on the pure-Go engine, one thread, with
// labels (those embedded in yolov8n, which yolo11n shares).
func detector(tb testing.TB, name string, labels []string) models.Detector {
	tb.Helper()
	b, err := os.ReadFile(modeltest.Path(tb, "models", name))
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := backend.Open(context.Background(), "go", b, models.Options{Threads: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { eng.Close() })
	det, err := yolo.NewDetector(eng, yolo.Options{Labels: labels})
	if err != nil {
		tb.Fatal(err)
	}
	return det
}

func cocoLabels(tb testing.TB) []string {
	b, err := os.ReadFile(modeltest.Path(tb, "models", "yolov8n_full_integer_quant.tflite"))
	if err != nil {
		tb.Fatal(err)
	}
	l, _, err := meta.Labels("", b)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// beltFrames are n frames of a synthetic belt carrying the test photos.
func beltFrames(tb testing.TB, n int) []capture.Frame {
	sprites, err := capture.LoadSprites(modeltest.Path(tb, "images"))
	if err != nil {
		tb.Fatal(err)
	}
	s := capture.NewSynth(capture.SynthOptions{FPS: 1e6, Seed: 3, Sprites: sprites})
	defer s.Close()
	out := make([]capture.Frame, n)
	for i := range out {
		f, err := s.Next(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = capture.Frame{Image: f.Image, Time: time.UnixMicro(int64(i+1) * 1e5)}
	}
	return out
}

// served runs the pipeline over frames, one at a time (the next frame is
// sent once the serving model has run on the one before, so none is
// dropped), with tap, and returns the events spooled.
func served(t *testing.T, det models.Detector, frames []capture.Frame, tap func(string, capture.Frame, []models.Detection, time.Duration)) []api.Event {
	src := agenttest.NewChanSource()
	sp := &agenttest.MemSpool{}
	done := make(chan struct{}, 1)
	p, err := agent.NewPipeline(agent.PipelineOptions{
		Cameras: []agent.Camera{{ID: "belt", Source: src}}, Detector: det, Spool: sp, Logger: quiet,
		Tap: func(c string, f capture.Frame, d []models.Detection, took time.Duration) {
			if tap != nil {
				tap(c, f, d, took)
			}
			done <- struct{}{}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	for _, f := range frames {
		if err := src.Send(ctx, f); err != nil {
			t.Fatal(err)
		}
		<-done
	}
	src.Close()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	return sp.Events()
}

// TestServingUnchangedByShadow (must-show 3): the serving model's
// detections on the same frames are identical with a shadow candidate
// running beside it and without, and the candidate's boxes never reach the
// spool.
func TestServingUnchangedByShadow(t *testing.T) {
	if testing.Short() {
		t.Skip("real models")
	}
	labels := cocoLabels(t)
	serving := detector(t, "yolov8n_full_integer_quant.tflite", labels)
	n, candidate := 6, "yolo11n_full_integer_quant.tflite"
	if raceEnabled { // seconds a frame: fewer frames, the cheaper network
		n, candidate = 2, "yolov8n_full_integer_quant.tflite"
	}
	frames := beltFrames(t, n)
	alone := served(t, serving, frames, nil)

	run := shadow.NewRunner(shadow.RunnerOptions{
		Spec:      api.ShadowSpec{DurationS: 60, MinAgreement: 0.5, CPUPercent: 100},
		Candidate: detector(t, candidate, labels), Logger: quiet,
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); run.Run(ctx) }()
	defer func() { cancel(); <-stopped }()
	beside := served(t, serving, frames, run.Tap)
	testutil.WaitFor(t, "the candidate to compare a frame", time.Minute, func() bool { return run.Frames() > 0 })

	if len(alone) == 0 {
		t.Fatal("no detections on the belt frames")
	}
	if !slices.Equal(alone, beside) {
		t.Fatalf("serving events differ with the shadow running:\nalone  %+v\nbeside %+v", alone, beside)
	}
	for _, e := range beside {
		if e.Model != "" || e.CameraID != "belt" {
			t.Errorf("event %+v not from the serving pipeline", e)
		}
	}
	t.Logf("%d events, identical; the candidate compared %d frames", len(alone), run.Frames())
}

// BenchmarkShadowServing (must-show 3): the serving frame rate of one
// camera that always has a frame waiting, yolov8n int8 on one thread,
// without a shadow and with yolo11n int8 in shadow at a CPU budget of 25%
// of one core. cand-busy-% is the share of the shadow's time the candidate
// spent inferring (its engine runs one thread: its share of one core), which
// the budget bounds; over a short run it can read above the budget, as the
// rest after the last inference may fall outside the window.
func BenchmarkShadowServing(b *testing.B) {
	labels := cocoLabels(b)
	serving := detector(b, "yolov8n_full_integer_quant.tflite", labels)
	sprites, err := capture.LoadSprites(modeltest.Path(b, "images"))
	if err != nil {
		b.Fatal(err)
	}
	for _, pct := range []int{0, 25} {
		name := "shadow=off"
		if pct > 0 {
			name = fmt.Sprintf("shadow=%d%%", pct)
		}
		b.Run(name, func(b *testing.B) {
			const perOp = 16 // frames served per iteration
			var elapsed time.Duration
			var served, compared int
			var candMs, runMs float64
			for b.Loop() {
				var run *shadow.Runner
				var frames atomic.Int64
				tap := func(c string, f capture.Frame, d []models.Detection, took time.Duration) {
					if run != nil {
						run.Tap(c, f, d, took)
					}
					frames.Add(1)
				}
				ctx, cancel := context.WithCancel(context.Background())
				stopped := make(chan struct{})
				if pct > 0 {
					run = shadow.NewRunner(shadow.RunnerOptions{
						Spec:      api.ShadowSpec{DurationS: 60, MinAgreement: 0.5, CPUPercent: pct},
						Candidate: detector(b, "yolo11n_full_integer_quant.tflite", labels), Logger: quiet,
					})
					go func() { defer close(stopped); run.Run(ctx) }()
				} else {
					close(stopped)
				}
				p, err := agent.NewPipeline(agent.PipelineOptions{
					Cameras:  []agent.Camera{{ID: "belt", Source: capture.NewSynth(capture.SynthOptions{FPS: 1000, Seed: 1, Sprites: sprites})}},
					Detector: serving, Spool: &agenttest.MemSpool{}, Logger: quiet, Tap: tap,
				})
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- p.Run(ctx) }()
				for frames.Load() < perOp {
					time.Sleep(2 * time.Millisecond) // polling a counter; benchmarks only
				}
				el := time.Since(start)
				elapsed += el
				served += int(frames.Load())
				if run != nil {
					r := run.Report(false)
					compared += r.Frames
					candMs += r.CandidateMs * float64(r.Frames)
					runMs += r.ElapsedS * 1000
				}
				cancel()
				<-done
				<-stopped
			}
			b.ReportMetric(float64(served)/elapsed.Seconds(), "frames/s")
			if pct > 0 {
				b.ReportMetric(float64(compared)/elapsed.Seconds(), "shadow-frames/s")
				b.ReportMetric(100*candMs/runMs, "cand-busy-%")
			}
		})
	}
}
