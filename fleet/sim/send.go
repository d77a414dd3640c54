package sim

import (
	"bytes"
	"container/heap"
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"edgefleet/fleet/api"
)

// The sending phase: a few sender goroutines (one per CPU) drive every
// device's schedule from a heap of wake times, instead of a goroutine and
// a timer per device, and encode each batch by appending into a reused
// buffer (api.AppendBatch). Each device keeps its own connection, client id, topics and seq
// stream; only the simulator's own bookkeeping is shared, so that its CPU
// time per batch stays small beside fleetd's.

// sendSlack is how early a sender serves a device whose time is near:
// devices due within it go in the same wake.
const sendSlack = time.Millisecond

// counters are the sending phase's totals.
type counters struct {
	batches, events, pubErrs, tele atomic.Int64
}

// clock is one device's schedule in the sending phase.
type clock struct {
	d              *device
	period         time.Duration
	next, nextTele time.Time // the next batch, the next telemetry report
	uptime         time.Time
	wake           time.Time // min(next, nextTele)
}

// clockHeap orders clocks by wake time (container/heap).
type clockHeap []*clock

func (h clockHeap) Len() int           { return len(h) }
func (h clockHeap) Less(i, j int) bool { return h[i].wake.Before(h[j].wake) }
func (h clockHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *clockHeap) Push(x any)        { *h = append(*h, x.(*clock)) }
func (h *clockHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// runSenders runs the devices' sending loops until ctx ends.
func runSenders(ctx context.Context, o *Options, devs []*device, c *counters) {
	n := min(runtime.GOMAXPROCS(0), len(devs))
	period := time.Duration(float64(time.Second) / o.Rate)
	now := time.Now()
	var wg sync.WaitGroup
	for w := range n {
		var h clockHeap
		for i := w; i < len(devs); i += n {
			// Spread devices over the period so they do not publish in lockstep.
			k := &clock{d: devs[i], period: period, uptime: now,
				next:     now.Add(time.Duration(rand.Int64N(int64(period)))),
				nextTele: now.Add(time.Duration(rand.Int64N(int64(o.TelemetryEvery))))}
			k.wake = minTime(k.next, k.nextTele)
			h = append(h, k)
		}
		heap.Init(&h)
		wg.Go(func() { sendLoop(ctx, o, h, c) })
	}
	wg.Wait()
}

// sendLoop serves the devices of h as they come due, until ctx ends.
func sendLoop(ctx context.Context, o *Options, h clockHeap, c *counters) {
	t := time.NewTimer(time.Until(h[0].wake))
	defer t.Stop()
	s := &sender{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for h[0].wake.Before(now.Add(sendSlack)) && ctx.Err() == nil {
			s.step(o, h[0], now, c)
			heap.Fix(&h, 0)
			now = time.Now()
		}
		t.Reset(time.Until(h[0].wake))
	}
}

// sender is one sender goroutine's scratch space.
type sender struct {
	events []api.Event
	buf    []byte
}

// step does what is due for one device at now: resends, telemetry, a
// batch (one per step: a device behind its schedule is due again at once).
func (s *sender) step(o *Options, k *clock, now time.Time, c *counters) {
	d, due := k.d, now.Add(sendSlack)
	d.resentInLoop.Add(int64(d.resend(now)))
	if !due.Before(k.nextTele) {
		// Like a ticker, skip the reports a busy machine made us miss
		// rather than send them back to back.
		if k.nextTele = k.nextTele.Add(o.TelemetryEvery); k.nextTele.Before(now) {
			k.nextTele = now.Add(o.TelemetryEvery)
		}
		if d.publishTelemetry(k.uptime) != nil {
			c.pubErrs.Add(1)
		}
		c.tele.Add(1)
	}
	if !due.Before(k.next) {
		k.next = k.next.Add(k.period)
		s.sendBatch(o, d, now, c)
	}
	k.wake = minTime(k.next, k.nextTele)
}

// sendBatch publishes the device's next batch of o.Events detections.
func (s *sender) sendBatch(o *Options, d *device, now time.Time, c *counters) {
	v := d.version()
	first := d.seq + 1
	s.events = s.events[:0]
	for range o.Events {
		d.seq++
		x := rand.Float32() * 600
		s.events = append(s.events, api.Event{Seq: d.seq, CameraID: SimCamera, Time: now.UnixMicro(), Model: v.Model, ModelVersion: v.ModelVersion,
			ClassID: 0, Label: o.Labels[rand.IntN(len(o.Labels))], Score: 0.5 + rand.Float32()/2, Box: [4]float32{x, x / 2, x + 40, x/2 + 80}})
	}
	s.buf = api.AppendBatch(s.buf[:0], d.id, s.events)
	p := s.buf
	if o.ResendAfter > 0 {
		p = bytes.Clone(p) // kept for resending
	}
	d.mu.Lock()
	d.pending[first] = now
	if o.ResendAfter > 0 {
		d.unacked[first] = &sent{payload: p, last: now}
	}
	d.mu.Unlock()
	if d.cl.publish(d.detTopic, 1, false, p) != nil {
		c.pubErrs.Add(1)
	}
	c.batches.Add(1)
	c.events.Add(int64(o.Events))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// parseAck reads an ack for device in the form fleetd writes
// (ingest.AppendAck), appending its ranges to out; anything else (and
// what api.Decode would refuse) answers false, for api.Decode to read.
func parseAck(out []api.SeqRange, p []byte, device string) ([]api.SeqRange, bool) {
	p, ok := cut(p, `{"device_id":"`)
	if !ok || api.ValidateID(device) != nil {
		return nil, false
	}
	if p, ok = cut(p, device); !ok {
		return nil, false
	}
	if p, ok = cut(p, `","ranges":[`); !ok {
		return nil, false
	}
	for {
		var r api.SeqRange
		if p, ok = cut(p, `{"from":`); !ok {
			return nil, false
		}
		if r.From, p, ok = cutUint(p); !ok {
			return nil, false
		}
		if p, ok = cut(p, `,"to":`); !ok {
			return nil, false
		}
		if r.To, p, ok = cutUint(p); !ok {
			return nil, false
		}
		if p, ok = cut(p, "}"); !ok || r.To < r.From {
			return nil, false
		}
		out = append(out, r)
		if rest, ok := cut(p, ","); ok {
			p = rest
			continue
		}
		if string(p) != "]}" {
			return nil, false
		}
		return out, true
	}
}

// cut removes prefix from p, reporting whether p had it.
func cut(p []byte, prefix string) ([]byte, bool) {
	if len(p) < len(prefix) || string(p[:len(prefix)]) != prefix {
		return p, false
	}
	return p[len(prefix):], true
}

// cutUint reads the decimal number p starts with (no sign, no leading zero).
func cutUint(p []byte) (uint64, []byte, bool) {
	i := 0
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	if i == 0 || i > 1 && p[0] == '0' {
		return 0, p, false
	}
	n, err := strconv.ParseUint(string(p[:i]), 10, 64)
	return n, p[i:], err == nil
}
