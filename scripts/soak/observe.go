package main

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/scripts/soak/check"
)

// ackHist sums fleetd's edgefleet_ingest_ack_seconds histogram over the
// run, across replicas and restarts (a counter that went down was reset by
// a restart: its new value is all new).
type ackHist struct {
	mu   sync.Mutex
	last map[string]map[float64]float64 // fleetd -> le -> count last seen
	sum  map[float64]float64            // le -> observations added up
}

const ackBucket = "edgefleet_ingest_ack_seconds_bucket{"

func (h *ackHist) add(name string, m map[string]float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last, h.sum = map[string]map[float64]float64{}, map[float64]float64{}
	}
	prev := h.last[name]
	cur := map[float64]float64{}
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, ackBucket)
		if !ok {
			continue
		}
		_, le, _ := strings.Cut(rest, `le="`)
		le, _, _ = strings.Cut(le, `"`)
		b, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		if err != nil {
			continue
		}
		cur[b] = v
		if old, ok := prev[b]; ok && v >= old {
			h.sum[b] += v - old
		} else {
			h.sum[b] += v
		}
	}
	h.last[name] = cur
}

// p99 is the upper bound of the bucket holding the 99th percentile, and
// the number of batches observed.
func (h *ackHist) p99() (time.Duration, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	les := make([]float64, 0, len(h.sum))
	for le := range h.sum {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return 0, 0
	}
	total := h.sum[les[len(les)-1]]
	for _, le := range les {
		if h.sum[le] >= 0.99*total && !math.IsInf(le, 1) {
			return time.Duration(le * float64(time.Second)), uint64(total)
		}
	}
	return time.Duration(math.MaxInt64), uint64(total)
}

// watch scrapes every fleetd's histogram every 5 s until ctx ends.
func (s *soak) watch(ctx context.Context) {
	for {
		for _, f := range s.fleetds {
			if m, err := scrape(ctx, f.http); err == nil {
				s.acks.add(f.name, m)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// samples reads every process (and the soak itself: simulator, proxies);
// one being restarted (by a fault, or edge-launcher switching versions) is
// read once it is back, within 20 s.
func (s *soak) samples(ctx context.Context) map[string]check.Sample {
	out := map[string]check.Sample{}
	for _, p := range s.procs {
		for try := 0; try < 40 && ctx.Err() == nil; try++ {
			if sm, ok := p.sample(ctx); ok && (p.metrics == "" || sm.Goroutines >= 0) {
				out[p.name] = sm
				break
			}
			sleep(ctx, 500*time.Millisecond)
		}
	}
	out["soak (simulator, proxies)"] = check.Sample{RSS: selfRSS(), Goroutines: runtime.NumGoroutine()}
	return out
}

// Settling: the simulator's 200 devices leave just before the end readings
// (each publishes its retained offline state and disconnects), and each
// fleetd handles those messages on a goroutine per message (paho with
// SetOrderMatters(false)) that waits for the registry's group commit to
// PostgreSQL. Read in that burst, a fleetd showed 36 -> 131 goroutines that
// were gone seconds later. So the end reading of each process is the one
// with the fewest goroutines of settleReads readings settleEvery apart: a
// passing burst is not counted, a leak (which only grows) still is.
const (
	settleReads = 6
	settleEvery = 2 * time.Second
)

// settledSamples takes settleReads rounds of samples and keeps the
// settled one of each process.
func (s *soak) settledSamples(ctx context.Context) map[string]check.Sample {
	var rounds []map[string]check.Sample
	for i := 0; i < settleReads && ctx.Err() == nil; i++ {
		if i > 0 {
			sleep(ctx, settleEvery)
		}
		rounds = append(rounds, s.samples(ctx))
	}
	return settled(rounds)
}

// settled keeps, per process, the reading with the fewest goroutines (the
// last of equals; the last reading for processes without a count).
func settled(rounds []map[string]check.Sample) map[string]check.Sample {
	out := map[string]check.Sample{}
	for _, r := range rounds {
		for name, sm := range r {
			if prev, ok := out[name]; !ok || sm.Goroutines <= prev.Goroutines {
				out[name] = sm
			}
		}
	}
	return out
}

// storedSeqs pages through a device's detections: seq -> copies stored.
func (s *soak) storedSeqs(ctx context.Context, device string) (map[uint64]int, error) {
	seqs := map[uint64]int{}
	q := rest.DetectionQuery{Device: device, Limit: rest.MaxLimit}
	for {
		p, err := s.api().Detections(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("soak: detections of %s: %w", device, err)
		}
		for _, r := range p.Records {
			seqs[r.Seq]++
		}
		if p.Next == "" || len(p.Records) == 0 {
			return seqs, nil
		}
		q.Cursor = p.Next
	}
}

// rollouts reads every rollout created by the soak, oldest first.
func (s *soak) rollouts(ctx context.Context) ([]check.Rollout, error) {
	var out []check.Rollout
	for _, id := range s.rolloutIDs {
		r, err := s.api().Rollout(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("soak: rollout %s: %w", id, err)
		}
		c := check.Rollout{ID: r.ID, Kind: r.Kind, State: r.State, Version: r.Version}
		for _, j := range r.Jobs {
			c.Jobs = append(c.Jobs, check.Job{Device: j.DeviceID, State: j.State, Previous: j.Previous, Rollback: j.Rollback})
		}
		out = append(out, c)
	}
	return out, nil
}

// versions are each device's model and agent versions as the registry
// has them.
func (s *soak) versions(ctx context.Context) (model, agent map[string]string, err error) {
	devs, err := s.api().Devices(ctx, rest.DeviceFilter{})
	if err != nil {
		return nil, nil, fmt.Errorf("soak: devices: %w", err)
	}
	model, agent = map[string]string{}, map[string]string{}
	for _, d := range devs {
		model[d.ID], agent[d.ID] = d.ModelVersion, d.AgentVersion
	}
	return model, agent, nil
}
