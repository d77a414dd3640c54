package link

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestBackoff: the waits of a seeded backoff stay within [step/2, step],
// the step doubles up to the configured maximum and never past it (with
// the old ±50% jitter a 30 s maximum became up to 45 s), and a reset
// starts again from the minimum.
func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		min, max time.Duration
		steps    []time.Duration // the step each wait is drawn under
	}{
		{"default", 500 * ms, 30 * time.Second, []time.Duration{500 * ms, time.Second, 2 * time.Second, 4 * time.Second,
			8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"max not a doubling of min", 300 * ms, time.Second, []time.Duration{300 * ms, 600 * ms, time.Second, time.Second}},
		{"max below min", 2 * time.Second, time.Second, []time.Duration{2 * time.Second, 2 * time.Second}},
		{"tiny", time.Nanosecond, 3 * time.Nanosecond, []time.Duration{1, 2, 3, 3}},
		{"huge max", time.Hour, time.Duration(math.MaxInt64), []time.Duration{time.Hour, 2 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(50) {
				b := newBackoff(tt.min, tt.max, rand.New(rand.NewPCG(seed, seed)))
				for round := range 2 {
					for i, step := range tt.steps {
						if w := b.next(); w < step/2 || w > step {
							t.Fatalf("seed %d round %d wait %d = %v, want within [%v, %v]", seed, round, i, w, step/2, step)
						}
					}
					b.reset()
				}
			}
		})
	}
	// The full range is used: some wait at the 30 s step is near the cap,
	// some near its half, so the jitter is not stuck at one end.
	b := newBackoff(30*time.Second, 30*time.Second, rand.New(rand.NewPCG(1, 2)))
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for range 200 {
		w := b.next()
		lo, hi = min(lo, w), max(hi, w)
	}
	if lo > 17*time.Second || hi < 28*time.Second {
		t.Errorf("200 waits at a 30 s step spread over [%v, %v], want from near 15 s to near 30 s", lo, hi)
	}
}
