package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
	"edgefleet/internal/testutil"
)

var fakeJPEG = []byte{0xFF, 0xD8, 0xFF, 0xD9}

func reply(device, request, camera, code string) []byte {
	r := api.SnapshotReply{Header: api.SnapshotHeader{DeviceID: device, RequestID: request, Camera: camera, Error: code}}
	if code == "" {
		r.JPEG = fakeJPEG
	}
	b, err := api.EncodeSnapshotReply(&r)
	if err != nil {
		panic(err)
	}
	return b
}

func newSnapshotIngest(t *testing.T, conn Conn) (*Ingest, *Snapshots) {
	t.Helper()
	snaps, err := NewSnapshots(conn, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	in, err := New(conn, Options{Store: store.NewMem(store.Retention{}), Devices: reg, Snapshots: snaps, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-in.Ready():
	case err := <-done:
		t.Fatalf("ingest stopped: %v", err)
	}
	return in, snaps
}

func (s *Snapshots) count(result string) float64 {
	return counterValue(s.replies.WithLabelValues(result))
}

// TestSnapshotRouting: a reply reaches its waiter only from the device that
// was asked and with its request id; others are counted and ignored.
func TestSnapshotRouting(t *testing.T) {
	conn := &fakeConn{}
	in, snaps := newSnapshotIngest(t, conn)
	type result struct {
		r   api.SnapshotReply
		err error
	}
	got := make(chan result, 1)
	go func() {
		r, err := snaps.Snapshot(context.Background(), "dev1", "cam-a", 1000)
		got <- result{r, err}
	}()
	var cmd api.Command
	testutil.WaitFor(t, "the snapshot command", 5*time.Second, func() bool {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		p := conn.pub[api.CommandsTopic("dev1")]
		return len(p) == 1 && api.Decode(p[0], &cmd) == nil
	})
	if cmd.Kind != api.CommandSnapshot || cmd.Snapshot.Camera != "cam-a" || cmd.Snapshot.MaxBytes != 1000 {
		t.Fatalf("command %+v", cmd)
	}
	id := cmd.JobID
	in.Handle(api.SnapshotTopic("dev1", "someone-else"), reply("dev1", "someone-else", "cam-a", ""))
	in.Handle(api.SnapshotTopic("dev2", id), reply("dev2", id, "cam-a", ""))      // another device
	in.Handle(api.SnapshotTopic("dev1", id), reply("dev2", id, "cam-a", ""))      // header names another device
	in.Handle(api.SnapshotTopic("dev1", id), []byte("not a reply"))               // malformed
	in.Handle(api.SnapshotTopic("dev1", id), reply("dev1", "other", "cam-a", "")) // header names another request
	select {
	case r := <-got:
		t.Fatalf("a wrong reply was taken: %+v", r)
	default:
	}
	in.Handle(api.SnapshotTopic("dev1", id), reply("dev1", id, "cam-a", ""))
	in.Handle(api.SnapshotTopic("dev1", id), reply("dev1", id, "cam-a", "")) // a redelivery, after the waiter left or not
	r := <-got
	if r.err != nil || !bytes.Equal(r.r.JPEG, fakeJPEG) || r.r.Header.RequestID != id {
		t.Fatalf("Snapshot = %+v, %v", r.r, r.err)
	}
	if n := snaps.count(SnapshotBad); n != 4 {
		t.Errorf("bad replies: %v, want 4", n)
	}
	if n := snaps.count(SnapshotOK); n < 1 {
		t.Errorf("ok replies: %v", n)
	}
	if n := snaps.count(SnapshotUnclaimed); n < 1 {
		t.Errorf("unclaimed replies: %v", n)
	}
}

// TestSnapshotEmbeddedBroker: a device on the embedded broker answers the
// command; an error reply comes back as a reply; a device that does not
// answer makes Snapshot return ErrNoReply when ctx ends.
func TestSnapshotEmbeddedBroker(t *testing.T) {
	auth := broker.NewStaticAuth()
	for _, d := range []string{"dev1", "dev2"} {
		if err := auth.SetDevice(d, "pw-"+d); err != nil {
			t.Fatal(err)
		}
	}
	b := brokertest.Start(t, broker.Options{Auth: auth, Logger: slog.New(slog.DiscardHandler)})
	_, snaps := newSnapshotIngest(t, Embedded(b))

	o := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("dev1").SetUsername("dev1").SetPassword("pw-dev1")
	dev := paho.NewClient(o)
	if tok := dev.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { dev.Disconnect(0) })
	tok := dev.Subscribe(api.CommandsTopic("dev1"), 1, func(c paho.Client, m paho.Message) {
		var cmd api.Command
		if err := json.Unmarshal(m.Payload(), &cmd); err != nil || cmd.Snapshot == nil {
			return
		}
		code := ""
		if cmd.Snapshot.Camera != "cam-a" {
			code = api.SnapshotUnknownCamera
		}
		c.Publish(api.SnapshotTopic("dev1", cmd.JobID), 1, false, reply("dev1", cmd.JobID, cmd.Snapshot.Camera, code))
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device subscribe: %v", tok.Error())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := snaps.Snapshot(ctx, "dev1", "cam-a", 0)
	if err != nil || !bytes.Equal(r.JPEG, fakeJPEG) || r.Header.Camera != "cam-a" {
		t.Fatalf("Snapshot(cam-a) = %+v, %v", r, err)
	}
	r, err = snaps.Snapshot(ctx, "dev1", "cam-z", 0)
	if err != nil || r.Header.Error != api.SnapshotUnknownCamera || r.JPEG != nil {
		t.Fatalf("Snapshot(cam-z) = %+v, %v", r, err)
	}

	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := snaps.Snapshot(short, "dev2", "cam-a", 0); !errors.Is(err, ErrNoReply) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Snapshot from a device not connected: %v, want ErrNoReply and DeadlineExceeded", err)
	}
	snaps.mu.Lock()
	n := len(snaps.waiting)
	snaps.mu.Unlock()
	if n != 0 {
		t.Errorf("%d waiters left behind", n)
	}
}

// TestSnapshotReplicasMosquitto: two fleetd replicas on one external broker
// each ask the same device; each reply reaches the replica that asked (both
// subscribe to every reply; the other finds no waiter).
func TestSnapshotReplicasMosquitto(t *testing.T) {
	addr := mosquitto(t)
	dev := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("snap-dev-" + t.Name()))
	if tok := dev.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { dev.Disconnect(0) })
	const device = "snap-dev"
	tok := dev.Subscribe(api.CommandsTopic(device), 1, func(c paho.Client, m paho.Message) {
		var cmd api.Command
		if json.Unmarshal(m.Payload(), &cmd) == nil && cmd.Snapshot != nil {
			c.Publish(api.SnapshotTopic(device, cmd.JobID), 1, false, reply(device, cmd.JobID, cmd.Snapshot.Camera, ""))
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device subscribe: %v", tok.Error())
	}
	var replicas []*Snapshots
	for i := range 2 {
		p, err := Dial(context.Background(), DialOptions{URL: "tcp://" + addr, ClientID: fmt.Sprintf("fleetd-%d-%s", i, t.Name())})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		_, s := newSnapshotIngest(t, p)
		replicas = append(replicas, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, s := range replicas {
		r, err := s.Snapshot(ctx, device, fmt.Sprintf("cam-%d", i), 0)
		if err != nil || r.Header.Camera != fmt.Sprintf("cam-%d", i) {
			t.Fatalf("replica %d: %+v, %v", i, r.Header, err)
		}
	}
	// Each replica took its own reply and saw the other's as unclaimed
	// (replica 0's copy of replica 1's reply may still be on its way).
	testutil.WaitFor(t, "replica 0 to see replica 1's reply", 5*time.Second, func() bool {
		return replicas[0].count(SnapshotUnclaimed) == 1
	})
	for i, s := range replicas {
		if ok, un := s.count(SnapshotOK), s.count(SnapshotUnclaimed); ok != 1 || un != 1 {
			t.Errorf("replica %d: %v ok, %v unclaimed; want 1 and 1", i, ok, un)
		}
	}
}
