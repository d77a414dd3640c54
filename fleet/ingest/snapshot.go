package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
)

// Snapshots asks devices for camera snapshots over MQTT: Snapshot publishes
// a CommandSnapshot on the device's commands topic and waits for the reply,
// which Ingest routes here by request id (Options.Snapshots).
//
// Every fleetd replica subscribes to all snapshot replies itself (never
// through a shared subscription), so the reply reaches the replica that
// asked; the others find no waiter and ignore it. Request ids are random
// (128 bits), and a reply counts only from the device that was asked.
// Safe for concurrent use.
type Snapshots struct {
	conn Conn

	mu      sync.Mutex
	waiting map[string]*waiter // by request id

	replies *prometheus.CounterVec
}

type waiter struct {
	device string
	ch     chan api.SnapshotReply // buffered 1; written once under mu
}

// Snapshot reply results, the values of the result label of
// edgefleet_snapshot_replies_total.
const (
	SnapshotOK          = "ok"
	SnapshotDeviceError = "device_error"
	SnapshotUnclaimed   = "unclaimed" // no waiter here: another replica's, or too late
	SnapshotBad         = "bad"       // malformed, or from a device not asked
)

// ErrNoReply is returned by Snapshot when ctx ends before the reply comes.
var ErrNoReply = errors.New("ingest: no snapshot reply")

// NewSnapshots returns a Snapshots publishing on conn; reg, if not nil,
// receives its metrics.
func NewSnapshots(conn Conn, reg prometheus.Registerer) (*Snapshots, error) {
	s := &Snapshots{conn: conn, waiting: map[string]*waiter{},
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_snapshot_replies_total",
			Help: "Snapshot replies received, by result."}, []string{"result"})}
	for _, r := range []string{SnapshotOK, SnapshotDeviceError, SnapshotUnclaimed, SnapshotBad} {
		s.replies.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(s.replies); err != nil {
			return nil, fmt.Errorf("ingest: register snapshot metrics: %w", err)
		}
	}
	return s, nil
}

// Snapshot asks device for the newest frame of camera, a JPEG of at most
// maxBytes (0: api.MaxSnapshotBytes), and waits for the reply until ctx
// ends (then the error wraps ErrNoReply and ctx's error). A reply carrying
// a device error (Header.Error) is returned as a reply, not an error.
func (s *Snapshots) Snapshot(ctx context.Context, device, camera string, maxBytes int) (api.SnapshotReply, error) {
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	cmd := api.Command{JobID: id, Kind: api.CommandSnapshot, Snapshot: &api.SnapshotRequest{Camera: camera, MaxBytes: maxBytes}}
	if err := cmd.Validate(); err != nil {
		return api.SnapshotReply{}, fmt.Errorf("ingest: snapshot: %w", err)
	}
	if err := api.ValidateID(device); err != nil {
		return api.SnapshotReply{}, fmt.Errorf("ingest: snapshot: device: %w", err)
	}
	payload, _ := json.Marshal(&cmd) // a Command always marshals
	w := &waiter{device: device, ch: make(chan api.SnapshotReply, 1)}
	s.mu.Lock()
	s.waiting[id] = w
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiting, id)
		s.mu.Unlock()
	}()
	if err := s.conn.Publish(ctx, api.CommandsTopic(device), false, payload); err != nil {
		return api.SnapshotReply{}, fmt.Errorf("ingest: snapshot: %w", err)
	}
	select {
	case r := <-w.ch:
		return r, nil
	case <-ctx.Done():
		return api.SnapshotReply{}, fmt.Errorf("%w from %s within the deadline: %w", ErrNoReply, device, ctx.Err())
	}
}

// deliver hands a reply that arrived on device's snapshot topic for request
// to its waiter. It does not keep payload.
func (s *Snapshots) deliver(device, request string, payload []byte) {
	s.mu.Lock()
	w := s.waiting[request]
	s.mu.Unlock()
	if w == nil {
		s.replies.WithLabelValues(SnapshotUnclaimed).Inc()
		return
	}
	r, err := api.ParseSnapshotReply(payload)
	if err != nil || w.device != device || r.Header.DeviceID != device || r.Header.RequestID != request {
		s.replies.WithLabelValues(SnapshotBad).Inc()
		return
	}
	result := SnapshotOK
	if r.Header.Error != "" {
		result = SnapshotDeviceError
	}
	s.replies.WithLabelValues(result).Inc()
	select {
	case w.ch <- r:
	default: // a duplicate (QoS 1 redelivery): the first one won
	}
}
