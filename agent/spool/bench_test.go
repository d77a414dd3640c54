package spool

import (
	"context"
	"crypto/rand"
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

// BenchmarkSpoolBytesPerHour is what an hour of a camera's output takes in
// the spool (Stats.Bytes: records, keys and bbolt's element headers) while
// the fleet is unreachable, for detections and for analytics events with
// and without snapshots. It appends a sample of each kind and scales its
// bytes per event by the stated rate; snapshot parts are random bytes of
// the sizes of a typical crop (6 KiB) and thumbnail (12 KiB) JPEG, which
// do not compress either.
func BenchmarkSpoolBytesPerHour(b *testing.B) {
	crop, thumb := make([]byte, 6<<10), make([]byte, 12<<10)
	rand.Read(crop)
	rand.Read(thumb)
	withSnap := func(i int) api.Event {
		e := analyticsEvent(i, 0)
		e.Snapshot = &api.EventSnapshot{TimeUs: e.Time, Crop: crop, Thumb: thumb}
		return e
	}
	for _, bc := range []struct {
		name   string
		perSec float64
		make   func(i int) api.Event
	}{
		{"detections/30_per_s", 30, ev},
		{"line_cross/no_snapshot/1_per_s", 1, func(i int) api.Event { return analyticsEvent(i, 0) }},
		{"line_cross/snapshot_18KiB/1_per_s", 1, withSnap},
		{"line_cross/snapshot_18KiB/6_per_min", 0.1, withSnap},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			const n = 2000
			var perEvent float64
			for range b.N {
				s := open(b, filepath.Join(b.TempDir(), "spool.db"), Options{MaxBytes: 1 << 30})
				batch := make([]api.Event, 100)
				for i := 0; i < n; i += len(batch) {
					for j := range batch {
						batch[j] = bc.make(i + j)
					}
					if _, _, err := s.Append(ctx, batch...); err != nil {
						b.Fatal(err)
					}
				}
				perEvent = float64(s.Stats().Bytes) / n
				s.Close()
			}
			b.ReportMetric(perEvent, "bytes/event")
			b.ReportMetric(perEvent*bc.perSec*3600/1e6, "MB/hour")
		})
	}
}
