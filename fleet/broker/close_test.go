package broker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// TestCloseWhileClientsLeave closes the broker at the moment its clients
// hang up, many times over. mochi v2.7.9's own Close disconnects a
// listener's clients through Clients.GetByListener, which takes the clients'
// read lock and then takes it again (in Len); a client leaving in between
// (Delete queues for the write lock) blocks the second read lock behind the
// writer and the writer behind the first: the broker's shutdown, and with it
// fleetd's, never returned (CI, 2026-12-03, TestConsoleShadow). The broker
// now disconnects a listener's clients from one snapshot (listener.Close).
func TestCloseWhileClientsLeave(t *testing.T) {
	rounds, clients := 30, 40
	if testing.Short() {
		rounds = 10
	}
	for r := range rounds {
		auth := NewStaticAuth()
		if err := auth.SetService("svc", "svcpw"); err != nil {
			t.Fatal(err)
		}
		b, err := New(Options{Addr: "127.0.0.1:0", Auth: auth, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		conns := make([]net.Conn, clients)
		for i := range conns {
			conns[i] = rawConnect(t, b.Addr(), fmt.Sprintf("svc-%d-%d", r, i))
		}
		stayer := rawConnect(t, b.Addr(), fmt.Sprintf("svc-%d-stays", r))
		var hangUp sync.WaitGroup
		start := make(chan struct{})
		for i, c := range conns {
			// Spread over the first milliseconds of the shutdown.
			hangUp.Go(func() { <-start; spin(i * 20); c.Close() })
		}
		close(start)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Run: %v", r, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: the broker did not stop within 20s of its clients leaving", r)
		}
		hangUp.Wait()
		// A client that stayed is disconnected by the shutdown.
		stayer.SetReadDeadline(time.Now().Add(wait))
		if _, err := io.Copy(io.Discard, stayer); err != nil {
			t.Fatalf("round %d: a connected client was not disconnected: %v", r, err)
		}
		stayer.Close()
	}
}

// rawConnect opens an MQTT 3.1.1 session as the service user svc under
// client id id and waits for the broker's CONNACK.
func rawConnect(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 4, 0xC2, 0, 30) // level 4; username, password, clean session; keepalive 30s
	body = append(body, str(id)...)
	body = append(body, str("svc")...)
	body = append(body, str("svcpw")...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(bufio.NewReader(c), ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("connack % x: %v", ack, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// spin busies the goroutine for about n microseconds without sleeping.
func spin(n int) {
	for end := time.Now().Add(time.Duration(n) * time.Microsecond); time.Now().Before(end); {
	}
}
