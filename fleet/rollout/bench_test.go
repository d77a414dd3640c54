package rollout

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"edgefleet/fleet/api"
)

// countDispatcher accepts every command and counts it.
type countDispatcher struct{ n atomic.Int64 }

func (c *countDispatcher) Dispatch(_ context.Context, _ string, cmd api.Command) error {
	c.n.Add(1)
	return nil
}

// BenchmarkDispatch measures how many devices per minute the engine sends
// jobs to: each op creates a rollout over 10,000 online devices in one wave
// and steps once, which dispatches every job and persists the rollout.
func BenchmarkDispatch(b *testing.B) {
	const n = 10_000
	s := newSim(b, n, "1")
	d := &countDispatcher{}
	e, err := Open(dbPath(b), Options{Devices: s, Dispatcher: d, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		sp := Spec{Artifact: testArtifact(fmt.Sprint(i%9 + 2)), Waves: []float64{100}}
		if _, err := e.Create(ctx, sp); err != nil {
			b.Fatal(err)
		}
		if err := e.Step(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if got := d.n.Load(); got < int64(n*b.N) {
		b.Fatalf("dispatched %d, want %d", got, n*b.N)
	}
	b.ReportMetric(float64(d.n.Load())/b.Elapsed().Minutes(), "devices/min")
}
