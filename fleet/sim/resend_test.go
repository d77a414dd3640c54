package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
)

// TestResend: against a fleet that acks a batch only the second time it
// arrives, the devices lose nothing with ResendAfter and everything without.
func TestResend(t *testing.T) {
	auth := broker.NewStaticAuth()
	for _, prefix := range []string{"re-", "no-"} {
		for i := range 3 {
			id := fmt.Sprintf("%s%d", prefix, i)
			auth.SetDevice(id, "pw-"+id)
		}
	}
	b := brokertest.Start(t, broker.Options{Auth: auth, Logger: slog.New(slog.DiscardHandler)})
	var mu sync.Mutex
	seen := map[string]int{}
	cancel, err := b.Subscribe(api.Filter(api.KindDetections), func(m broker.Message) {
		var batch api.DetectionBatch
		if api.Decode(m.Payload, &batch) != nil || len(batch.Events) == 0 {
			return
		}
		k := fmt.Sprint(batch.DeviceID, "/", batch.Events[0].Seq)
		mu.Lock()
		seen[k]++
		n := seen[k]
		mu.Unlock()
		if n < 2 {
			return // dropped, as by a fleetd that died before acking
		}
		ack, _ := json.Marshal(api.Ack{DeviceID: batch.DeviceID, Ranges: []api.SeqRange{{From: batch.Events[0].Seq, To: batch.Events[len(batch.Events)-1].Seq}}})
		b.Publish(api.AcksTopic(batch.DeviceID), ack, false, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	for _, tc := range []struct {
		name   string
		resend time.Duration
	}{{"resend", 150 * time.Millisecond}, {"no resend", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Run(context.Background(), Options{Broker: "tcp://" + b.Addr(), Devices: 3, Prefix: tc.name[:2] + "-", Rate: 10,
				Duration: 600 * time.Millisecond, Drain: 2 * time.Second, ResendAfter: tc.resend, Login: login})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v", rep)
			if rep.Batches == 0 {
				t.Fatal("nothing sent")
			}
			if tc.resend > 0 && (rep.Lost != 0 || rep.Resent < rep.Batches) {
				t.Errorf("with resends: %d of %d batches lost, %d resent", rep.Lost, rep.Batches, rep.Resent)
			}
			if tc.resend == 0 && (rep.Lost != rep.Batches || rep.Resent != 0) {
				t.Errorf("without resends: %d of %d batches lost, %d resent", rep.Lost, rep.Batches, rep.Resent)
			}
		})
	}
}
