package link

import (
	"context"
	"fmt"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

// BenchmarkDeliver measures detections delivered per second from an outbox
// (in memory, or the agent's bbolt spool with its fsync'd acks), over
// loopback MQTT through the embedded broker, to a receiver that stores and
// acknowledges them (inside the broker, as fleetd does, or as a separate
// MQTT client). One op drains 20,000 events, filled untimed beforehand.
func BenchmarkDeliver(b *testing.B) {
	const perOp = 20000
	for _, bc := range []struct {
		outbox, receiver string
		window           int
	}{
		{"mem", "inline", 1}, {"mem", "inline", 4}, {"mem", "mqtt", 1}, {"mem", "mqtt", 4},
		{"spool", "inline", 1}, {"spool", "inline", 4},
	} {
		b.Run(fmt.Sprintf("outbox=%s/receiver=%s/window=%d", bc.outbox, bc.receiver, bc.window), func(b *testing.B) {
			ctx := context.Background()
			br := startBroker(b, "127.0.0.1:0")
			r := newReceiver(devID)
			if bc.receiver == "inline" {
				r.attachInline(b, br)
			} else {
				r.attachPaho(b, "tcp://"+br.Addr(), svcUser, svcPass)
			}
			// fill adds perOp events; pending says how many are not acked.
			var (
				fill    func(first int)
				pending func() int
				out     Outbox
			)
			if bc.outbox == "mem" {
				m := NewMemOutbox()
				out, pending = m, m.Len
				fill = func(first int) {
					for i := range perOp {
						m.Add(testEvent(uint64(first + i)))
					}
				}
			} else {
				sp := openSpool(b)
				out, pending = sp, func() int { return int(sp.Stats().Depth) }
				fill = func(first int) {
					evs := make([]api.Event, 1000)
					for j := 0; j < perOp; j += len(evs) {
						for i := range evs {
							evs[i] = testEvent(uint64(first + j + i))
						}
						if _, _, err := sp.Append(ctx, evs...); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			opts := fastOptions("tcp://"+br.Addr(), devID, devPass)
			l := runLink(b, opts, out, SenderOptions{Window: bc.window, Poll: time.Millisecond})
			testutil.Eventually(b, "connected", l.Connected)
			b.ReportAllocs()
			var el time.Duration
			total := 0
			for range b.N {
				// Fill untimed, then time the drain.
				b.StopTimer()
				fill(total + 1)
				total += perOp
				b.StartTimer()
				start := time.Now()
				for r.count() < total || pending() > 0 {
					time.Sleep(200 * time.Microsecond)
				}
				el += time.Since(start)
			}
			b.ReportMetric(float64(total)/el.Seconds(), "events/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
