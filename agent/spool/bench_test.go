package spool

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

// BenchmarkAppend measures durable appends (each Append returns after its
// fsync'd commit). One op is perOp events appended by concurrent goroutines
// in calls of batch events, so even -benchtime=1x gives a stable events/s.
// Commits are bound by fsync latency (two fdatasyncs per bbolt commit, a few
// ms here), so events/s grows with the events in flight: appenders × batch.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		appenders, batch, perOp int
	}{
		{8, 256, 200_000},  // pipelines handing over detections in batches: the ≥100k/s target
		{8, 64, 100_000},   // smaller batches: fewer events in flight per fsync
		{1, 4096, 200_000}, // one caller, big batches, nothing to group
		{64, 1, 20_000},    // one event per call: group commit alone
	} {
		b.Run(fmt.Sprintf("appenders=%d/batch=%d", bc.appenders, bc.batch), func(b *testing.B) {
			ctx := context.Background()
			s := open(b, filepath.Join(b.TempDir(), "spool.db"), Options{})
			batches := make([][]api.Event, bc.appenders)
			for g := range batches {
				batches[g] = evs(g*bc.batch, bc.batch)
			}
			calls := bc.perOp / (bc.appenders * bc.batch)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				for g := range bc.appenders {
					wg.Go(func() {
						for range calls {
							if _, _, err := s.Append(ctx, batches[g]...); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			elapsed := time.Since(start)
			b.StopTimer()
			st := s.Stats()
			events := float64(st.Appended)
			b.ReportMetric(events/elapsed.Seconds(), "events/s")
			b.ReportMetric(events/value(s.m.commits), "events/commit")
		})
	}
}

// BenchmarkNextAck measures draining: Next in batches of 1000 and an Ack of
// each batch (one fsync each), as the sender does. One op drains 50,000
// events; filling the spool is not timed.
func BenchmarkNextAck(b *testing.B) {
	const perOp, batch = 50_000, 1000
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "spool.db"), Options{})
	fill := evs(0, 500)
	b.ReportAllocs()
	var drained int
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		for range perOp / len(fill) {
			if _, _, err := s.Append(ctx, fill...); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		var after uint64
		for {
			es, err := s.Next(ctx, after, batch)
			if err != nil {
				b.Fatal(err)
			}
			if len(es) == 0 {
				break
			}
			after = es[len(es)-1].Seq
			if err := s.Ack(ctx, api.SeqRange{From: es[0].Seq, To: after}); err != nil {
				b.Fatal(err)
			}
			drained += len(es)
		}
		elapsed += time.Since(start)
	}
	if drained != perOp*b.N {
		b.Fatalf("drained %d events, want %d", drained, perOp*b.N)
	}
	b.ReportMetric(float64(drained)/elapsed.Seconds(), "events/s")
}
