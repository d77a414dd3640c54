package rollout

import (
	"context"
	"encoding/json"
	"fmt"

	"edgefleet/fleet/api"
	"edgefleet/fleet/registry"
)

// Registry adapts fleetd's device registry (bbolt or PostgreSQL) to Devices.
type Registry struct{ R registry.Devices }

var _ Devices = Registry{}

// Select implements Devices.
func (g Registry) Select(_ context.Context, sel map[string]string) ([]Device, error) {
	devs := g.R.List(registry.Filter{Labels: sel})
	out := make([]Device, len(devs))
	for i, d := range devs {
		out[i] = Device{ID: d.ID, Online: d.Online, Model: d.Model, ModelVersion: d.ModelVersion, AgentVersion: d.AgentVersion}
	}
	return out, nil
}

// Publisher is the publishing half of fleetd's MQTT connection
// (fleet/ingest.Conn has this method).
type Publisher interface {
	Publish(ctx context.Context, topic string, retain bool, payload []byte) error
}

// MQTT is a Dispatcher that publishes each command as JSON, QoS 1, on the
// device's commands topic.
type MQTT struct{ Conn Publisher }

var _ Dispatcher = MQTT{}

// Dispatch implements Dispatcher.
func (m MQTT) Dispatch(ctx context.Context, device string, cmd api.Command) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("rollout: dispatch: %w", err)
	}
	return m.Conn.Publish(ctx, api.CommandsTopic(device), false, b)
}
