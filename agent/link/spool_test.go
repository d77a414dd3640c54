package link

import (
	"context"
	"path/filepath"
	"testing"

	"edgefleet/agent/spool"
	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

// The agent's bbolt spool is an Outbox, with the optional Ready and
// CorruptSeq extensions.
var (
	_ Outbox     = (*spool.Spool)(nil)
	_ readier    = (*spool.Spool)(nil)
	_ corrupter  = (*spool.CorruptError)(nil)
	_ byteReader = (*spool.Spool)(nil)
)

func openSpool(t testing.TB) *spool.Spool {
	t.Helper()
	s, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), spool.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestDeliveryFromSpool drains the real bbolt spool across a broker
// restart: every event arrives once, in order, and the spool ends empty.
func TestDeliveryFromSpool(t *testing.T) {
	ctx := context.Background()
	sp := openSpool(t)
	b1 := startBroker(t, "127.0.0.1:0")
	addr := b1.Addr()
	r := newReceiver(devID)
	r.attachPaho(t, "tcp://"+addr, svcUser, svcPass)
	l := runLink(t, fastOptions("tcp://"+addr, devID, devPass), sp, fastSender)
	n := 0
	produce := func(k int) {
		for range k / 10 {
			evs := make([]api.Event, 10)
			for i := range evs {
				n++
				evs[i] = testEvent(uint64(n))
			}
			if _, _, err := sp.Append(ctx, evs...); err != nil {
				t.Fatal(err)
			}
		}
	}
	testutil.Eventually(t, "connected", l.Connected)
	produce(300)
	testutil.Eventually(t, "first events stored", func() bool { return r.count() >= 100 })
	failures := counterValue(l.metrics.connectFailures)
	b1.Close()
	testutil.Eventually(t, "link to notice", func() bool { return !l.Connected() })
	produce(600)
	waitReconnectFailures(t, l, failures, 2)
	startBroker(t, addr)
	produce(300)
	testutil.Eventually(t, "all stored", func() bool { return r.count() >= n })
	testutil.Eventually(t, "spool emptied by acks", func() bool { return sp.Stats().Depth == 0 })
	r.check(t, n, true)
}
