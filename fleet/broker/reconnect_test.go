package broker

import (
	"fmt"
	"sync"
	"testing"
)

// TestQuickReconnectKeepsSubscriptions: a client that drops its connection
// and comes straight back with the same client id must get what is
// published to it. mochi-mqtt's clean-up of the old connection can run
// after the new one registered and erase its subscriptions; the broker
// waits for that clean-up before accepting the new connection.
func TestQuickReconnectKeepsSubscriptions(t *testing.T) {
	b, _ := startBroker(t, nil)
	const n = 150
	clients := make([]*client, n)
	t.Cleanup(func() { // before the broker stops, also when the test fails
		for _, c := range clients {
			if c != nil {
				c.Disconnect(0)
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("quick-%d", i)
			topic := "t/" + id
			for round := 0; round < 2; round++ {
				c, err := dial(b.Addr(), id, "svc", "svcpw", nil)
				if err != nil {
					errs <- fmt.Errorf("%s round %d: %v", id, round, err)
					return
				}
				tok := c.Subscribe(topic, 1, nil)
				if !tok.WaitTimeout(wait) || tok.Error() != nil {
					errs <- fmt.Errorf("%s: subscribe: %v", id, tok.Error())
					return
				}
				if round == 0 {
					c.Disconnect(0) // drop at once, reconnect at once
					continue
				}
				clients[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	pub := mustDial(t, b, "publisher", "svc", "svcpw")
	for i := 0; i < n; i++ {
		publish(t, pub, fmt.Sprintf("t/quick-%d", i), 1, "hello")
	}
	waitFor(t, "every reconnected client's message", func() bool {
		for _, c := range clients {
			if len(c.received()) == 0 {
				return false
			}
		}
		return true
	})
}
