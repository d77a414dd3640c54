package agent

import (
	"context"
	"image"
	"maps"
	"os"
	"strconv"
	"testing"
	"time"

	"edgefleet/agent/agenttest"
	"edgefleet/agent/analytics"
	"edgefleet/agent/capture"
	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models"
	"edgefleet/models/backend"
	"edgefleet/models/meta"
	"edgefleet/models/modeltest"
	"edgefleet/models/yolo"
)

// spriteLabel is what the model calls the main object of each test photo,
// in LoadSprites order (astronaut, chelsea, coffee, motorcycle_left). The
// coffee photo is a cup on a table: the table is the object riding the belt
// (the cup is found in some frames only, and is not counted).
var spriteLabel = []string{"person", "cat", "dining table", "motorcycle"}

// TestBeltCountsMatchTruth runs the synthetic belt (the test photos riding
// left to right) through the pipeline with a real model (yolo26n int8 at
// 320 on the pure-Go engine), the tracker and a counting line, frame by
// frame with none dropped: the agent's line counts, per class, equal the
// belt's ground-truth crossings exactly.
//
// The run covers 25 objects (about 160 frames, 15 s of CPU on the shared
// 2-core build machine; 2 under -race, where the engine is several times
// slower); EDGEFLEET_BELT_OBJECTS=100 runs the 100 objects or more.
func TestBeltCountsMatchTruth(t *testing.T) {
	objects := 25
	if raceEnabled {
		objects = 2
	}
	if v := os.Getenv("EDGEFLEET_BELT_OBJECTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("EDGEFLEET_BELT_OBJECTS=%q: want a number of objects", v)
		}
		objects = n
	}
	mb, err := os.ReadFile(modeltest.Path(t, "models", "yolo26n_int8_320_e2e.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	sprites, err := capture.LoadSprites(modeltest.Path(t, "images"))
	if err != nil {
		t.Fatal(err)
	}
	labels, _, _ := meta.Labels("", mb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	eng, err := backend.Open(ctx, "go", mb, models.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	yd, err := yolo.NewDetector(eng, yolo.Options{Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	detected := make(chan struct{}, 1)
	det := agenttest.DetectorFunc(func(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
		defer func() { detected <- struct{}{} }()
		return yd.Detect(ctx, imgs)
	})
	classes := map[string]bool{}
	for _, l := range spriteLabel {
		classes[l] = true
	}

	belt := capture.NewSynth(capture.SynthOptions{Width: 320, Height: 240, Seed: 11, Sprites: sprites, Speed: 36})
	lines := []capture.TruthLine{{ID: "exit", A: analytics.Point{0.5, 1}, B: analytics.Point{0.5, 0}}}
	src := agenttest.NewChanSource()
	sp := &agenttest.MemSpool{}
	p, err := NewPipeline(PipelineOptions{
		Cameras: []Camera{{ID: "belt", Source: src, Detections: DetectionsOff, Tracking: &Tracking{
			Analytics: analytics.Config{Lines: []analytics.Line{{ID: "exit", A: lines[0].A, B: lines[0].B, Classes: classes}}},
		}}},
		Detector: det, Spool: sp, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	truth := map[string]int{} // direction/label → crossings
	total := 0
	t0 := time.UnixMilli(1_700_000_000_000)
	for n := 0; ; n++ {
		f := capture.Frame{Image: belt.Render(n), Time: t0.Add(time.Duration(n) * 200 * time.Millisecond)}
		if err := src.Send(ctx, f); err != nil {
			t.Fatal(err)
		}
		<-detected
		testutil.WaitFor(t, "frame processed", time.Minute, func() bool { return p.Counters()[0].LastFrame.Equal(f.Time) })
		// Crossings(n) happened between frames n-1 and n, both processed.
		for _, c := range belt.Crossings(n, lines) {
			truth[c.Direction+"/"+spriteLabel[c.Sprite]]++
			total++
		}
		// Stop with enough crossings and none near the end: none in the
		// last two frames (the agent sees a crossing up to two frames after
		// the truth: its box is not the drawn rectangle, and the line has
		// hysteresis) and none in the next one (nor before).
		if total >= objects && noCrossing(belt, lines, n-1, n, n+1) {
			t.Logf("%d frames", n+1)
			break
		}
	}
	got := map[string]int{}
	for _, c := range p.Counters()[0].Lines {
		got[c.Direction+"/"+c.Label] += int(c.Count)
	}
	src.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	crossEvents := 0
	for _, e := range sp.Events() {
		if e.Type == api.TypeLineCross {
			crossEvents++
		}
	}
	t.Logf("truth %v, agent %v, %d line_cross events", truth, got, crossEvents)
	if !maps.Equal(got, truth) {
		t.Errorf("agent counted %v, the belt's truth is %v", got, truth)
	}
	if crossEvents != total {
		t.Errorf("%d line_cross events for %v crossings", crossEvents, truth)
	}
}

// noCrossing reports whether no object crosses a line in the given frames.
func noCrossing(belt *capture.Synth, lines []capture.TruthLine, frames ...int) bool {
	for _, k := range frames {
		if len(belt.Crossings(k, lines)) > 0 {
			return false
		}
	}
	return true
}
