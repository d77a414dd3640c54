package update

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models"
)

func TestParseContentRange(t *testing.T) {
	cases := []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 100-199/200", 100, 200, true},
		{"bytes 0-0/1", 0, 1, true},
		{"bytes 5-9/*", 5, -1, true},
		{"bytes */300", 0, 300, true},
		{"bytes 10-5/300", 0, 300, false},
		{"bytes -1-5/300", 0, 300, false},
		{"bytes 1-5", 0, -1, false},
		{"items 1-5/9", 0, -1, false},
		{"bytes 1-5/-9", 0, -1, false},
		{"", 0, -1, false},
	}
	for _, c := range cases {
		start, total, ok := parseContentRange(c.in)
		if ok != c.ok || (ok && (start != c.start || total != c.total)) || (!ok && total != c.total) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, %v", c.in, start, total, ok, c.start, c.total, c.ok)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 100-199/200", "bytes */300", "bytes 5-9/*", "bytes 9-1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, total, ok := parseContentRange(s)
		if ok && (start < 0 || total < -1) {
			t.Errorf("%q: start %d total %d accepted", s, start, total)
		}
	})
}

func TestHealthPolicy(t *testing.T) {
	ms := time.Millisecond
	base := Stats{Frames: 100, Detections: 200, P50: 10 * ms}
	cases := []struct {
		name        string
		pol         HealthPolicy
		before, cur Stats
		want        string // "" for healthy
	}{
		{"healthy", HealthPolicy{}, base, Stats{Frames: 50, Detections: 90, P50: 12 * ms}, ""},
		{"errors", HealthPolicy{}, base, Stats{Frames: 50, Errors: 1, Detections: 100, P50: 10 * ms}, "1 inference errors in the health window (at most 0 allowed)"},
		{"errors tolerated", HealthPolicy{MaxErrors: 2}, base, Stats{Frames: 50, Errors: 2, Detections: 100, P50: 10 * ms}, ""},
		{"no frames", HealthPolicy{}, base, Stats{}, "0 frames inferred in the health window (need 1)"},
		{"few frames", HealthPolicy{MinFrames: 10}, base, Stats{Frames: 9, Detections: 18}, "9 frames inferred in the health window (need 10)"},
		{"slow", HealthPolicy{}, base, Stats{Frames: 50, Detections: 100, P50: 21 * ms}, "p50 latency 21ms, was 10ms before (more than 2x)"},
		{"slow allowed", HealthPolicy{MaxLatencyRatio: 3}, base, Stats{Frames: 50, Detections: 100, P50: 21 * ms}, ""},
		{"collapse", HealthPolicy{}, base, Stats{Frames: 50, Detections: 49, P50: 10 * ms}, "detection rate collapsed to 0.98 per frame, was 2 before (below 50%)"},
		{"collapse check off", HealthPolicy{MinDetectionRatio: -1}, base, Stats{Frames: 50, P50: 10 * ms}, ""},
		{"no baseline", HealthPolicy{}, Stats{}, Stats{Frames: 5, P50: time.Second}, ""},
		{"baseline without detections", HealthPolicy{}, Stats{Frames: 10, P50: 10 * ms}, Stats{Frames: 5, P50: 10 * ms}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.pol.withDefaults().judge(c.before, c.cur)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("unhealthy: %v", err)
			case c.want != "" && (err == nil || !errors.Is(err, ErrUnhealthy) || !strings.HasSuffix(err.Error(), c.want)):
				t.Errorf("got %v, want ...%s", err, c.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 12; n++ {
		full := min(10*time.Millisecond<<(n-1), time.Second)
		for range 50 {
			d := backoff(10*time.Millisecond, time.Second, n)
			if d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

// failingEngine is a real engine that starts failing after its first
// invoke (the smoke test): a model that loads but breaks in production.
type failingEngine struct {
	models.Engine
	calls int
}

func (e *failingEngine) Invoke(ctx context.Context) error {
	e.calls++
	if e.calls > 1 {
		return errors.New("tensor arena corrupted")
	}
	return e.Engine.Invoke(ctx)
}

// TestInferenceErrorsRollBackEarly: errors end the health window before
// its end.
func TestInferenceErrorsRollBackEarly(t *testing.T) {
	old := tinyE2E(0.9)
	f := newFixture(t, old, func(o *Options) {
		o.HealthWindow = time.Minute
		o.Open = func(ctx context.Context, b []byte, opts models.Options) (models.Engine, error) {
			e, err := openGo(ctx, b, opts)
			if err != nil {
				return nil, err
			}
			return &failingEngine{Engine: e}, nil
		}
	})
	cam := startCameraTolerant(t, f.srv, 2*time.Millisecond)
	f.start()
	c := f.signed("job-errors", tinyE2E(0.8), "2")
	t0 := time.Now()
	f.handle(c)
	end := f.rep.wait(t, c.JobID, jobTimeout)
	if end.State != api.JobRolledBack || !strings.HasPrefix(end.Reason, "update: unhealthy: ") || !strings.Contains(end.Reason, " inference errors in the health window (at most 0 allowed)") {
		t.Fatalf("final %s (%q)", end.State, end.Reason)
	}
	if took := time.Since(t0); took > 30*time.Second {
		t.Errorf("took %v: the one-minute window was not cut short", took)
	}
	if got := f.serving(); got != sum256(old) {
		t.Errorf("serving %s, want the old model", short(got))
	}
	// Frames fail only while the bad model is on trial.
	n, frames := cam.errs.Load(), cam.frames.Load()
	testutil.Eventually(t, "10 frames after the rollback", func() bool { return cam.frames.Load() >= frames+10 })
	if cam.errs.Load() != n {
		t.Errorf("errors continue after the rollback")
	}
}
