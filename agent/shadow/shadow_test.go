package shadow

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/agent/capture"
	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models"
)

func det(label string, score float32, x1, y1, x2, y2 float32) models.Detection {
	return models.Detection{Label: label, Score: score, Box: [4]float32{x1, y1, x2, y2}}
}

func TestIoU(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b [4]float32
		want float64
	}{
		{"same", [4]float32{0, 0, 10, 10}, [4]float32{0, 0, 10, 10}, 1},
		{"disjoint", [4]float32{0, 0, 10, 10}, [4]float32{20, 20, 30, 30}, 0},
		{"touching", [4]float32{0, 0, 10, 10}, [4]float32{10, 0, 20, 10}, 0},
		{"half shifted", [4]float32{0, 0, 10, 10}, [4]float32{5, 0, 15, 10}, 50.0 / 150},
		{"inside", [4]float32{0, 0, 10, 10}, [4]float32{0, 0, 10, 5}, 0.5},
		{"degenerate", [4]float32{0, 0, 0, 0}, [4]float32{0, 0, 0, 0}, 0},
	} {
		if got := IoU(c.a, c.b); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: IoU = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCompare(t *testing.T) {
	cat := det("cat", 0.9, 0, 0, 100, 100)
	dog := det("dog", 0.8, 200, 0, 300, 100)
	for _, c := range []struct {
		name               string
		serving, candidate []models.Detection
		matched            int
		p, r, f1           float64
		shift              float64
		confusion          map[[2]string]int
	}{
		{name: "both empty: full agreement", p: 1, r: 1, f1: 1},
		{name: "identical", serving: []models.Detection{cat, dog}, candidate: []models.Detection{cat, dog}, matched: 2, p: 1, r: 1, f1: 1},
		{name: "candidate finds nothing", serving: []models.Detection{cat}, p: 1, r: 0, f1: 0},
		{name: "serving finds nothing", candidate: []models.Detection{cat}, p: 0, r: 1, f1: 0},
		{name: "one of two, one extra", serving: []models.Detection{cat, dog},
			candidate: []models.Detection{det("cat", 0.7, 10, 0, 110, 100), det("cat", 0.6, 400, 0, 500, 100)},
			// IoU 90*100/(2*10000-9000) = 0.818: matched; p 1/2, r 1/2, f1 1/2; shift 0.7-0.9
			matched: 1, p: 0.5, r: 0.5, f1: 0.5, shift: -0.2},
		{name: "shifted too far", serving: []models.Detection{cat}, candidate: []models.Detection{det("cat", 0.9, 50, 0, 150, 100)},
			// IoU 1/3 < 0.5
			p: 0, r: 0, f1: 0},
		{name: "same box other class is confusion", serving: []models.Detection{cat, dog},
			candidate: []models.Detection{det("dog", 0.9, 0, 0, 100, 100), det("cat", 0.8, 200, 0, 300, 100)},
			p:         0, r: 0, f1: 0, confusion: map[[2]string]int{{"cat", "dog"}: 1, {"dog", "cat"}: 1}},
		{name: "greedy by score takes the best overlap", serving: []models.Detection{det("cat", 0.5, 0, 0, 100, 100), det("cat", 0.5, 60, 0, 160, 100)},
			// the 0.9 box (20..120) overlaps the first 0.667, the second 0.429: it takes the first; the 0.8 box
			// (70..170) then matches the second (IoU 0.818).
			candidate: []models.Detection{det("cat", 0.8, 70, 0, 170, 100), det("cat", 0.9, 20, 0, 120, 100)},
			matched:   2, p: 1, r: 1, f1: 1, shift: 0.7}, // a sum: 0.4 + 0.3
		{name: "no labels: class ids", serving: []models.Detection{{ClassID: 3, Box: [4]float32{0, 0, 10, 10}}},
			candidate: []models.Detection{{ClassID: 4, Box: [4]float32{0, 0, 10, 10}}},
			confusion: map[[2]string]int{{"#3", "#4"}: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Compare(c.serving, c.candidate)
			p, rc, f1 := ratios(r.Serving, r.Candidate, r.Matched)
			if r.Matched != c.matched || !near(p, c.p) || !near(rc, c.r) || !near(f1, c.f1) || !near(r.F1(), c.f1) {
				t.Errorf("matched %d p %v r %v f1 %v, want %d %v %v %v", r.Matched, p, rc, f1, c.matched, c.p, c.r, c.f1)
			}
			if !near(r.ScoreShift, c.shift) {
				t.Errorf("score shift %v, want %v", r.ScoreShift, c.shift)
			}
			if len(r.Confusion) != len(c.confusion) {
				t.Errorf("confusion %v, want %v", r.Confusion, c.confusion)
			}
			for k, n := range c.confusion {
				if r.Confusion[k] != n {
					t.Errorf("confusion %v = %d, want %d", k, r.Confusion[k], n)
				}
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestAccumulatorReport(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAccumulator(t0, nil)
	cat := det("cat", 0.9, 0, 0, 100, 100)
	// Frame 1 on a: identical (1 matched). Frame 2 on a: candidate calls the cat a dog.
	// Frame 3 on b: both empty.
	a.Add("a", Compare([]models.Detection{cat}, []models.Detection{cat}), 10*time.Millisecond, 20*time.Millisecond)
	a.Add("a", Compare([]models.Detection{cat}, []models.Detection{det("dog", 0.5, 0, 0, 100, 100)}), 10*time.Millisecond, 20*time.Millisecond)
	a.Add("b", Compare(nil, nil), 10*time.Millisecond, 20*time.Millisecond)
	a.Skip()
	r := a.Report(t0.Add(5*time.Second), false, 0.9)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	// Totals: serving 2, candidate 2, matched 1: p = r = f1 = 0.5.
	if r.Frames != 3 || r.Skipped != 1 || r.Matched != 1 || !near(r.Agreement, 0.5) || !near(r.Precision, 0.5) || !near(r.Recall, 0.5) {
		t.Errorf("report %+v", r)
	}
	if !near(r.ServingMs, 10) || !near(r.CandidateMs, 20) || !near(r.LatencyRatio, 2) || !near(r.ElapsedS, 5) {
		t.Errorf("latency %v %v %v elapsed %v", r.ServingMs, r.CandidateMs, r.LatencyRatio, r.ElapsedS)
	}
	if len(r.Cameras) != 2 || r.Cameras[0].Camera != "a" || r.Cameras[0].Frames != 2 || r.Cameras[1].F1 != 1 || r.Cameras[1].CountRatio != 1 {
		t.Errorf("cameras %+v", r.Cameras)
	}
	// Class "cat": serving 2, matched 1, candidate 1; "dog": candidate 1.
	cl := r.Cameras[0].Classes
	if len(cl) != 2 || cl[0].Label != "cat" || cl[0].Serving != 2 || cl[0].Matched != 1 || cl[1].Label != "dog" || cl[1].Candidate != 1 || cl[1].Precision != 0 {
		t.Errorf("classes %+v", cl)
	}
	if len(r.Confusion) != 1 || r.Confusion[0] != (api.ShadowConfusion{Serving: "cat", Candidate: "dog", Count: 1}) {
		t.Errorf("confusion %+v", r.Confusion)
	}
	ok, why := Passed(r)
	if ok || !strings.Contains(why, "shadow agreement 0.50 below 0.90: precision 0.50 recall 0.50 over 3 frames; confusion cat→dog 1") {
		t.Errorf("Passed = %v %q", ok, why)
	}
	r.MinAgreement = 0.5
	if ok, _ := Passed(r); !ok {
		t.Error("agreement at the threshold does not pass")
	}
	if ok, why := Passed(api.ShadowReport{}); ok || !strings.Contains(why, "no frame") {
		t.Errorf("empty phase: %v %q", ok, why)
	}
}

func photo(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			i := img.PixOffset(x, y)
			copy(img.Pix[i:i+4], []uint8{uint8(x * 7), uint8(y * 13), uint8((x * y) % 251), 255})
		}
	}
	return img
}

func TestSamplesTopN(t *testing.T) {
	s := NewSamples(2, 0)
	img := photo(320, 240)
	cat := det("cat", 0.9, 10, 10, 100, 100)
	dog := det("dog", 0.9, 10, 10, 100, 100)
	offer := func(ts int64, serving, candidate []models.Detection) {
		t.Helper()
		if err := s.Offer("cam", time.UnixMicro(ts), img, serving, candidate, Compare(serving, candidate)); err != nil {
			t.Fatal(err)
		}
	}
	offer(1, []models.Detection{cat}, []models.Detection{cat})                                          // agreement: not kept
	offer(2, []models.Detection{cat, dog}, []models.Detection{cat})                                     // 1 - 2/3
	offer(3, []models.Detection{cat}, []models.Detection{dog})                                          // 1, 2 boxes
	offer(4, []models.Detection{cat, det("cat", 0.5, 200, 10, 300, 100)}, []models.Detection{dog, dog}) // 1, 4 boxes
	got := s.List()
	if len(got) != 2 || got[0].TimeUs != 4 || got[1].TimeUs != 3 || got[0].Disagreement != 1 {
		t.Fatalf("kept %d samples: %+v", len(got), got)
	}
	for _, g := range got {
		img, err := jpeg.Decode(bytes.NewReader(g.JPEG))
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 240 {
			t.Errorf("sample is %v, want side by side 640x240", b)
		}
	}
}

func TestSideBySideCap(t *testing.T) {
	img := photo(1920, 1080) // noisy: large at full quality
	b, err := SideBySide(img, nil, []models.Detection{det("cat", 0.9, 10, 10, 500, 500)}, 40<<10)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 40<<10 {
		t.Errorf("%d bytes, cap %d", len(b), 40<<10)
	}
	if _, err := jpeg.Decode(bytes.NewReader(b)); err != nil {
		t.Error(err)
	}
}

func TestRest(t *testing.T) {
	for _, c := range []struct {
		took time.Duration
		pct  int
		want time.Duration
	}{
		{100 * time.Millisecond, 25, 300 * time.Millisecond},
		{100 * time.Millisecond, 50, 100 * time.Millisecond},
		{100 * time.Millisecond, 100, 0},
		{10 * time.Millisecond, 10, 90 * time.Millisecond},
	} {
		if got := Rest(c.took, c.pct); got != c.want {
			t.Errorf("Rest(%v, %d) = %v, want %v", c.took, c.pct, got, c.want)
		}
	}
}

// slowDetector finds one cat per image and takes d per call.
type slowDetector struct {
	d     time.Duration
	calls atomic.Int64
}

func (s *slowDetector) Detect(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
	s.calls.Add(1)
	time.Sleep(s.d) // stands in for inference time, not for an event
	out := make([][]models.Detection, len(imgs))
	for i := range imgs {
		out[i] = []models.Detection{det("cat", 0.9, 0, 0, 10, 10)}
	}
	return out, nil
}

// TestRunnerSamplesAndBudget: one frame in SampleEvery is offered, and
// frames offered while the candidate runs or rests are skipped, not queued.
func TestRunnerSamplesAndBudget(t *testing.T) {
	cand := &slowDetector{d: 20 * time.Millisecond}
	r := NewRunner(RunnerOptions{Spec: api.ShadowSpec{DurationS: 1, MinAgreement: 0.5, SampleEvery: 2, CPUPercent: 10}, Candidate: cand})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	testutil.WaitFor(t, "runner idle", 5*time.Second, func() bool { return r.idle.Load() })
	f := capture.Frame{Image: photo(16, 16), Time: time.Unix(1, 0)}
	serving := []models.Detection{det("cat", 0.8, 0, 0, 10, 10)}
	r.Tap("a", f, serving, time.Millisecond) // frame 0: sampled, runs
	r.Tap("a", f, serving, time.Millisecond) // frame 1: not sampled
	r.Tap("a", f, serving, time.Millisecond) // frame 2: sampled; the candidate runs or rests (>= 180 ms): skipped
	testutil.WaitFor(t, "one frame compared", 5*time.Second, func() bool { return r.Frames() == 1 })
	rep := r.Report(false)
	if rep.Frames != 1 || rep.Skipped != 1 || rep.Agreement != 1 || !near(rep.ScoreShift, 0.1) {
		t.Errorf("report: frames %d skipped %d agreement %v shift %v", rep.Frames, rep.Skipped, rep.Agreement, rep.ScoreShift)
	}
	cancel()
	<-done
	if n := cand.calls.Load(); n != 1 {
		t.Errorf("candidate ran %d times, want 1", n)
	}
}

// TestRunnerFinishCountsFrameInFlight: Finish ends the runner after the
// frame the candidate is on, which still counts.
func TestRunnerFinishCountsFrameInFlight(t *testing.T) {
	cand := &slowDetector{d: 50 * time.Millisecond}
	r := NewRunner(RunnerOptions{Spec: api.ShadowSpec{DurationS: 1, MinAgreement: 0.5, CPUPercent: 100}, Candidate: cand})
	done := make(chan struct{})
	go func() { r.Run(context.Background()); close(done) }()
	testutil.WaitFor(t, "runner idle", 5*time.Second, func() bool { return r.idle.Load() })
	r.Tap("a", capture.Frame{Image: photo(16, 16)}, nil, time.Millisecond)
	testutil.WaitFor(t, "the candidate to start", 5*time.Second, func() bool { return cand.calls.Load() == 1 })
	r.Finish()
	<-done
	if got := r.Report(true); got.Frames != 1 || got.Agreement != 0 {
		t.Errorf("frames %d agreement %v, want the frame in flight counted (1, 0)", got.Frames, got.Agreement)
	}
}
