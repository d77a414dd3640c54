package rollout

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
	"edgefleet/fleet/registry"
)

type recordPublisher struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

func (p *recordPublisher) Publish(_ context.Context, topic string, retain bool, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if retain {
		panic("commands must not be retained")
	}
	p.msgs[topic] = payload
	return nil
}

// TestFleetAdapters runs a rollout over the real registry and checks the
// commands published on MQTT topics decode under the wire contract.
func TestFleetAdapters(t *testing.T) {
	ctx := context.Background()
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	reg.UpdateState(api.State{DeviceID: "cam-1", Online: true, Labels: map[string]string{"site": "a"}, Model: "yolo", ModelVersion: "1"})
	reg.UpdateState(api.State{DeviceID: "cam-2", Online: true, Labels: map[string]string{"site": "b"}, Model: "yolo", ModelVersion: "1"})
	reg.UpdateState(api.State{DeviceID: "cam-3", Online: false, Labels: map[string]string{"site": "a"}, Model: "yolo", ModelVersion: "1"})
	pub := &recordPublisher{msgs: map[string][]byte{}}
	prom := prometheus.NewRegistry()
	e, err := Open(dbPath(t), Options{Devices: Registry{reg}, Dispatcher: MQTT{pub}, Logger: quietLogger(), Registerer: prom})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Selector: map[string]string{"site": "a"}, Waves: []float64{100}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Targets != 2 {
		t.Fatalf("targets %d, want cam-1 and cam-3", sum.Targets)
	}
	e.Step(ctx)
	e.Step(ctx)
	if len(pub.msgs) != 1 {
		t.Fatalf("published %v, want one command to cam-1", pub.msgs)
	}
	var cmd api.Command
	if err := api.Decode(pub.msgs[api.CommandsTopic("cam-1")], &cmd); err != nil {
		t.Fatal(err)
	}
	if cmd.Kind != api.CommandModelUpdate || cmd.Artifact.Version != "2" || !strings.HasPrefix(cmd.JobID, sum.ID+"-") || !strings.HasSuffix(cmd.JobID, "-0") {
		t.Fatalf("command %+v", cmd)
	}
	if err := e.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-1", JobID: cmd.JobID, State: api.JobSucceeded}); err != nil {
		t.Fatal(err)
	}
	reg.UpdateState(api.State{DeviceID: "cam-3", Online: true, Labels: map[string]string{"site": "a"}})
	e.Step(ctx)
	if _, ok := pub.msgs[api.CommandsTopic("cam-3")]; !ok {
		t.Fatal("cam-3 got no command when it came online")
	}
	got := map[string]float64{}
	mfs, err := prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"edgefleet_rollout_commands_total/model_update":   2,
		"edgefleet_rollout_jobs_finished_total/succeeded": 1,
		"edgefleet_rollouts/wave":                         1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
}
