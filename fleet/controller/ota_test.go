package controller

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/client"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/server"
	"edgefleet/fleet/store"
	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

type memPublisher struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

func (p *memPublisher) Publish(_ context.Context, topic string, _ bool, b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs[topic] = b
	return nil
}

// TestOpenOTA wires OTA as the controller does: a generated key, the registry, an
// MQTT publisher and the broker's device credentials.
func TestOpenOTA(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	reg, err := registry.Open(filepath.Join(dir, "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	reg.UpdateState(api.State{DeviceID: "cam-1", Online: true, Labels: map[string]string{"site": "a"}})
	auth := broker.NewStaticAuth()
	auth.SetDevice("cam-1", "pw1")
	auth.SetService("ingest", "svc")
	pub := &memPublisher{msgs: map[string][]byte{}}
	log := slog.New(slog.DiscardHandler)
	ota, err := openOTA(otaConfig{Dir: dir, ArtifactBase: "https://fleet.example"}, rollout.Registry{R: reg}, pub, auth, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ota.Close()
	if fi, err := os.Stat(filepath.Join(dir, "keys", "fleet.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key: %v %v", fi, err)
	}
	const tok = "alice-token-0123456789"
	s, err := server.New(server.Options{Store: store.NewMem(store.Retention{}), Registry: reg, Tokens: map[string]string{tok: "alice"}, Logger: log, OTA: ota.view})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	api1, err := client.New(ts.URL, tok, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := api1.Push(ctx, rest.KindModel, rest.Upload{Name: "yolov5n", Version: "7"}, "m.tflite", bytes.NewReader(model)); err != nil {
		t.Fatalf("push: %v", err)
	}
	if _, err := api1.CreateRollout(ctx, rest.CreateRollout{Model: "yolov5n@7", Waves: "100%"}); err != nil {
		t.Fatalf("create: %v", err)
	}
	ota.engine.(*rollout.Engine).Step(ctx)
	var cmd api.Command
	pub.mu.Lock()
	err = api.Decode(pub.msgs[api.CommandsTopic("cam-1")], &cmd)
	pub.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Verify(ota.view.Keys, cmd.Artifact.Manifest, cmd.Artifact.Sig, cmd.Artifact.KeyID)
	if err != nil || !strings.HasPrefix(cmd.Artifact.URL, "https://fleet.example/artifacts/") {
		t.Fatalf("command %+v: %v", cmd.Artifact, err)
	}
	get := func(user, pass string) (int, []byte) {
		req, _ := http.NewRequest("GET", ts.URL+strings.TrimPrefix(cmd.Artifact.URL, "https://fleet.example"), nil)
		req.SetBasicAuth(user, pass)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, got := get("cam-1", "pw1")
	if code != 200 || !bytes.Equal(got, model) || m.Check(cmd.Artifact.SHA256, int64(len(got))) != nil {
		t.Fatalf("download %d, %d bytes", code, len(got))
	}
	for _, c := range [][2]string{{"cam-1", "wrong"}, {"ingest", "svc"}, {"cam-2", "pw1"}} {
		if code, _ := get(c[0], c[1]); code != http.StatusUnauthorized {
			t.Errorf("download as %s/%s: %d", c[0], c[1], code)
		}
	}
	// A job report through the engine, as ingest's OnJob would pass it.
	if err := ota.engine.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-1", JobID: cmd.JobID, State: api.JobSucceeded}); err != nil {
		t.Fatal(err)
	}
	ota.engine.(*rollout.Engine).Step(ctx)
	if l := ota.engine.List(); len(l) != 1 || l[0].State != rollout.StateCompleted {
		t.Fatalf("rollouts %+v", l)
	}
}
