package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

// BenchmarkPostgresIngest measures batched ingest into PostgreSQL: each op
// is 64 devices each storing 20 batches of 50 events (64,000 events),
// grouped into commits across devices. Two ways of calling the store:
//   - wait: each device waits for its batch to be committed before it
//     sends the next (64 calls at most in flight, a closed loop);
//   - submit: batches are handed over with Submit as fleetd's ingest does,
//     up to 1,024 in flight (fleetd allows 50,000), and done acknowledges
//     them.
func BenchmarkPostgresIngest(b *testing.B) {
	const devices, batches, per = 64, 20, 50
	mk := func(now time.Time, from uint64) []api.Event {
		out := make([]api.Event, per)
		for i := range out {
			s := from + uint64(i)
			out[i] = api.Event{Seq: s, CameraID: "cam" + strconv.Itoa(int(s%2)), Time: now.Add(-time.Duration(s) * time.Millisecond).UnixMicro(),
				Label: []string{"person", "car", "dog"}[s%3], Score: 0.5, Box: [4]float32{1, 2, 3, 4}, Model: "yolov8n", ModelVersion: "7"}
		}
		return out
	}
	report := func(b *testing.B, s *Postgres) {
		st := s.Stats()
		b.ReportMetric(float64(st.Stored)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(st.Calls)/float64(max(st.Commits, 1)), "calls/commit")
		b.ReportMetric(float64(st.CommitNanos)/1e6/float64(max(st.Commits, 1)), "ms/commit")
		b.ReportMetric(float64(s.lingered.Load())/float64(max(st.Commits, 1)), "lingered/commit")
		b.ReportMetric(float64(s.lingerIdle.Load())/float64(max(st.Commits, 1)), "idle-ended/commit")
	}
	b.Run("wait", func(b *testing.B) {
		now := time.Now()
		s := openPostgres(b, Retention{}, now)
		seq := uint64(0)
		b.ResetTimer()
		for range b.N {
			ingestConcurrently(b, s, "dev-", devices, batches, func(i uint64) []api.Event { return mk(now, seq+i*per+1) })
			seq += batches * per
		}
		report(b, s)
	})
	b.Run("submit", func(b *testing.B) {
		now := time.Now()
		s := openPostgres(b, Retention{}, now)
		seq := uint64(0)
		inflight := make(chan struct{}, 1024)
		var wg sync.WaitGroup
		done := func(_ Result, err error) {
			if err != nil {
				b.Error(err)
			}
			<-inflight
			wg.Done()
		}
		b.ResetTimer()
		for range b.N {
			for i := range uint64(batches) {
				for d := range devices {
					inflight <- struct{}{}
					wg.Add(1)
					if err := s.Submit(context.Background(), fmt.Sprintf("dev-%d", d), mk(now, seq+i*per+1), done); err != nil {
						b.Fatal(err)
					}
				}
			}
			wg.Wait()
			seq += batches * per
		}
		report(b, s)
	})
}

// BenchmarkPostgresQueryP99 measures the console's device page query (one
// device's last hour, newest 100) over a store holding
// $EDGEFLEET_BENCH_ROWS detections (default 1,000,000; the figure
// is 10,000,000) of 1,000 devices over the last 24 hours. It reports the
// p50 and p99 of 200 queries on random devices per op, and the p99 of the
// first query of each device (cold cache).
func BenchmarkPostgresQueryP99(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("EDGEFLEET_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	now := time.Now()
	s := openPostgres(b, Retention{}, now)
	ctx := context.Background()
	for d := -1; d >= -2; d-- { // the last 24 hours may span three days
		s.parts.ensure(ctx, s.pool, s.log, []int64{dayOf(now.UnixMicro()) + int64(d)}, now)
	}
	const devices = 1000
	load := time.Now()
	// Spread over 24h: device i%1000, one row every 86400e6/rows µs.
	step := int64(86400e6) / int64(rows)
	for start := 0; start < rows; start += 200_000 {
		n := min(200_000, rows-start)
		_, err := s.pool.Exec(ctx, `INSERT INTO detections (time_us, device, seq, camera, label, class_id, score, x1, y1, x2, y2, model, model_version, size)
			SELECT $1::bigint - g * $2::bigint, 'dev-' || (g % 1000), g, 'cam' || (g % 4), (ARRAY['person','car','dog','cup'])[1 + g % 4], g % 4, 0.5, 1, 2, 3, 4, 'yolov8n', '7', 40
			FROM generate_series($3::bigint, $4::bigint) g`, now.UnixMicro(), step, start, start+n-1)
		if err != nil {
			b.Fatal(err)
		}
	}
	// As autovacuum would have by then: hint bits set, statistics taken.
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE detections`); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d rows in %v", rows, time.Since(load).Round(time.Millisecond))
	query := func(dev int) time.Duration {
		q := Query{Device: fmt.Sprintf("dev-%d", dev), From: now.Add(-time.Hour), To: now.Add(time.Second)}
		t := time.Now()
		p, err := s.Query(ctx, q)
		if err != nil || len(p.Records) == 0 {
			b.Fatalf("query: %d records, %v", len(p.Records), err)
		}
		return time.Since(t)
	}
	// The first query of each device reads its last hour from disk; a
	// running fleetd has it cached, since those rows were just written.
	var cold []time.Duration
	for d := range devices {
		cold = append(cold, query(d))
	}
	slices.Sort(cold)
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		for range 200 {
			lat = append(lat, query(rng.IntN(devices)))
		}
	}
	b.ReportMetric(float64(cold[len(cold)*99/100].Microseconds())/1000, "cold-p99-ms")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(rows), "rows")
}
