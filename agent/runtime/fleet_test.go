package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"edgefleet/agent/config"
	"edgefleet/agent/runtime"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// TestFleetSnapshotAndInventory is issue 12/17's snapshot path end to end:
// a real fleetd (embedded broker) and a real agent runtime with a
// synthetic camera and a real model. The operator fetches a snapshot
// through fleetd's REST API (fleetd asks the agent over MQTT): a JPEG of
// the camera's size; an unknown camera is 404; the device JSON carries
// the agent's inventory; once the agent is gone, 504 comes at once.
func TestFleetSnapshotAndInventory(t *testing.T) {
	model := modeltest.Path(t, "models", "yolo26n_int8_320_e2e.tflite")
	f := controllertest.Start(t, "devices: [{id: box-snap, password: pw-snap}]\n")
	dir := t.TempDir()
	cfg, err := config.Parse(strings.NewReader(fmt.Sprintf(`device_id: box-snap
model:
  path: %s
  version: "1"
cameras:
  - id: belt
    source: synth
    width: 320
    height: 240
    fps: 2
spool:
  path: %s
fleet:
  broker: tcp://%s
  username: box-snap
  password: pw-snap
telemetry_interval: 1s
http:
  listen: 127.0.0.1:0
`, model, filepath.Join(dir, "spool.db"), f.MQTT)))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt, err := runtime.Open(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()

	var d rest.Device
	testutil.WaitFor(t, "box-snap online with its inventory", 30*time.Second, func() bool {
		d, err = f.API.Device(context.Background(), "box-snap")
		return err == nil && d.Online && d.Inventory != nil
	})
	inv := d.Inventory
	host, _ := os.Hostname()
	if inv.Address != "127.0.0.1" || inv.Arch != goruntime.GOARCH || inv.OS == "" || inv.Hostname != host ||
		inv.AgentVersion == "" || inv.Model == "" || inv.DiskTotalBytes == 0 || inv.DiskFreeBytes == 0 || inv.Time == 0 {
		t.Errorf("inventory %+v", *inv)
	}
	if goruntime.GOOS == "linux" && (inv.Kernel == "" || inv.UptimeS <= 0 || inv.BootTime <= 0) {
		t.Errorf("inventory lacks kernel or uptime: %+v", *inv)
	}
	if d.SnapshotURL != "" || len(d.Cameras) != 1 || d.Cameras[0] != "belt" {
		t.Errorf("device snapshot_url %q, cameras %v", d.SnapshotURL, d.Cameras)
	}

	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+f.HTTP+path, nil)
		req.Header.Set("Authorization", "Bearer "+controllertest.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	const snap = "/api/v1/devices/box-snap/cameras/belt/snapshot"
	var resp *http.Response
	var body []byte
	// Until the first frame has gone through the model, the agent answers no_frame (502).
	testutil.WaitFor(t, "a snapshot", 30*time.Second, func() bool {
		resp, body = get(snap)
		if resp.StatusCode == http.StatusBadGateway && strings.Contains(string(body), "no_frame") {
			return false
		}
		return true
	})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("snapshot: %d %s %q", resp.StatusCode, resp.Header, body)
	}
	img, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("snapshot is not a JPEG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 240 {
		t.Errorf("snapshot %v, want the camera's 320x240", b)
	}

	// The typed client gets the same, within the agent's 2/s per camera
	// (a request within 500 ms of the last encode gets that JPEG again).
	if b, err := f.API.Snapshot(context.Background(), "box-snap", "belt"); err != nil || !bytes.HasPrefix(b, []byte{0xFF, 0xD8}) {
		t.Errorf("client snapshot: %d bytes, %v", len(b), err)
	}
	if _, err := f.API.Snapshot(context.Background(), "box-snap", "nope"); !strings.Contains(fmt.Sprint(err), "HTTP 404") {
		t.Errorf("client snapshot of an unknown camera: %v, want HTTP 404", err)
	}

	for _, path := range []string{"/api/v1/devices/box-snap/cameras/nope/snapshot", "/api/v1/devices/nobody/cameras/belt/snapshot"} {
		if resp, body := get(path); resp.StatusCode != 404 || !json.Valid(body) {
			t.Errorf("%s: %d %s, want 404 with a JSON reason", path, resp.StatusCode, body)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v", err)
	}
	testutil.WaitFor(t, "box-snap offline", 10*time.Second, func() bool {
		d, err = f.API.Device(context.Background(), "box-snap")
		return err == nil && !d.Online
	})
	// "offline" (not "did not answer within 5s"): fleetd did not wait for it.
	resp, body = get(snap)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "is offline") {
		t.Errorf("offline device: %d %s, want 504 naming it offline", resp.StatusCode, body)
	}
}
