package sim

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"math"
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
// buffer. Each device keeps its own connection, client id, topics and seq
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
	s.buf = appendBatch(s.buf[:0], d.id, s.events)
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

// appendBatch appends the JSON of a DetectionBatch, byte for byte what
// json.Marshal writes, without reflection. Events other than plain
// detections go through json.Marshal.
func appendBatch(b []byte, device string, events []api.Event) []byte {
	for i := range events {
		if e := &events[i]; e.Type != "" || e.V != 0 || e.Track != nil || e.Line != nil || e.Zone != nil || e.Snapshot != nil {
			p, _ := json.Marshal(&api.DetectionBatch{DeviceID: device, Events: events})
			return append(b, p...)
		}
	}
	b = append(b, `{"device_id":`...)
	b = appendJSONString(b, device)
	b = append(b, `,"events":`...)
	if events == nil {
		return append(b, "null}"...)
	}
	b = append(b, '[')
	for i := range events {
		e := &events[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"seq":`...)
		b = strconv.AppendUint(b, e.Seq, 10)
		b = append(b, `,"camera_id":`...)
		b = appendJSONString(b, e.CameraID)
		b = append(b, `,"time_us":`...)
		b = strconv.AppendInt(b, e.Time, 10)
		if e.Model != "" {
			b = append(b, `,"model":`...)
			b = appendJSONString(b, e.Model)
		}
		if e.ModelVersion != "" {
			b = append(b, `,"model_version":`...)
			b = appendJSONString(b, e.ModelVersion)
		}
		b = append(b, `,"class_id":`...)
		b = strconv.AppendInt(b, int64(e.ClassID), 10)
		b = append(b, `,"label":`...)
		b = appendJSONString(b, e.Label)
		b = append(b, `,"score":`...)
		b = appendFloat32(b, e.Score)
		b = append(b, `,"box":[`...)
		for j, f := range e.Box {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendFloat32(b, f)
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

// appendJSONString appends s as a JSON string as json.Marshal writes it: plain
// printable ASCII as it is, anything else through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			p, _ := json.Marshal(s)
			return append(b, p...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat32 appends f as json.Marshal writes a float32: the shortest
// decimal form where json.Marshal uses it, json.Marshal otherwise
// (exponents; NaN and infinities, which it refuses, append nothing).
func appendFloat32(b []byte, f float32) []byte {
	if a := math.Abs(float64(f)); a != 0 && (a < 1e-6 || a >= 1e21) || math.IsNaN(float64(f)) {
		p, _ := json.Marshal(f)
		return append(b, p...)
	}
	return strconv.AppendFloat(b, float64(f), 'f', -1, 32)
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
