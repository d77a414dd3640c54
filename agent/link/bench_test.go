package link

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDeliver measures detections delivered per second from an
// in-memory outbox, over loopback MQTT through the embedded broker, to a
// receiver that stores and acknowledges them (inside the broker, as fleetd
// does, or as a separate MQTT client). One op delivers 20,000 events.
func BenchmarkDeliver(b *testing.B) {
	const perOp = 20000
	for _, bc := range []struct {
		receiver string
		window   int
	}{{"inline", 1}, {"inline", 4}, {"mqtt", 1}, {"mqtt", 4}} {
		b.Run(fmt.Sprintf("receiver=%s/window=%d", bc.receiver, bc.window), func(b *testing.B) {
			br := startBroker(b, "127.0.0.1:0")
			r := newReceiver(devID)
			if bc.receiver == "inline" {
				r.attachInline(b, br)
			} else {
				r.attachPaho(b, "tcp://"+br.Addr(), svcUser, svcPass)
			}
			out := NewMemOutbox()
			opts := fastOptions("tcp://"+br.Addr(), devID, devPass)
			l := runLink(b, opts, out, SenderOptions{Window: bc.window, Poll: time.Millisecond})
			waitUntil(b, "connected", l.Connected)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			total := 0
			for range b.N {
				for range perOp {
					total++
					out.Add(testEvent(uint64(total)))
				}
				for r.count() < total || out.Len() > 0 {
					time.Sleep(200 * time.Microsecond)
				}
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(total)/el.Seconds(), "events/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
