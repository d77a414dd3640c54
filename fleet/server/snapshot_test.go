package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
)

// snapshotFunc is the test twin of Snapshots (the real one, over MQTT, is
// ingest.Snapshots: agent/runtime's end-to-end test drives it).
type snapshotFunc func(ctx context.Context, device, camera string, maxBytes int) (api.SnapshotReply, error)

func (f snapshotFunc) Snapshot(ctx context.Context, device, camera string, maxBytes int) (api.SnapshotReply, error) {
	return f(ctx, device, camera, maxBytes)
}

func TestSnapshotRoute(t *testing.T) {
	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xD9}
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	reg.UpdateState(api.State{DeviceID: "cam-1", Online: true, Cameras: []string{"belt", "dark", "busy", "slow", "broken"}})
	reg.UpdateState(api.State{DeviceID: "cam-2", Online: false, Cameras: []string{"belt"}})
	asked := 0
	snaps := snapshotFunc(func(ctx context.Context, device, camera string, _ int) (api.SnapshotReply, error) {
		asked++
		h := api.SnapshotHeader{DeviceID: device, RequestID: "r", Camera: camera}
		switch camera {
		case "belt":
			h.Time = 1764028800123
			return api.SnapshotReply{Header: h, JPEG: jpeg}, nil
		case "dark":
			h.Error, h.Reason = api.SnapshotNoFrame, "no frame yet"
		case "busy":
			h.Error = api.SnapshotRateLimited
		case "slow":
			<-ctx.Done()
			return api.SnapshotReply{}, fmt.Errorf("no reply: %w", ctx.Err())
		case "broken":
			return api.SnapshotReply{}, fmt.Errorf("publish: not connected")
		}
		return api.SnapshotReply{Header: h}, nil
	})
	pr := prometheus.NewRegistry()
	s, err := New(Options{Store: store.NewMem(store.Retention{}), Registry: reg, Tokens: map[string]string{tok: "alice"},
		Gatherer: pr, Logger: slog.New(slog.DiscardHandler), Snapshots: snaps})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)

	tests := []struct {
		path   string
		token  string
		status int
		reason string // in the JSON error
		asks   bool   // the device is asked
	}{
		{"/api/v1/devices/cam-1/cameras/belt/snapshot", tok, 200, "", true},
		{"/api/v1/devices/cam-1/cameras/belt/snapshot", "", 401, "token", false},
		{"/api/v1/devices/nope/cameras/belt/snapshot", tok, 404, `no device "nope"`, false},
		{"/api/v1/devices/cam-1/cameras/other/snapshot", tok, 404, `no camera "other"`, false},
		{"/api/v1/devices/cam-1/cameras/a+b/snapshot", tok, 404, "no camera", false},
		{"/api/v1/devices/cam-2/cameras/belt/snapshot", tok, 504, "offline", false},
		{"/api/v1/devices/cam-1/cameras/dark/snapshot", tok, 502, "no_frame: no frame yet", true},
		{"/api/v1/devices/cam-1/cameras/busy/snapshot", tok, 429, "rate_limited", true},
		{"/api/v1/devices/cam-1/cameras/broken/snapshot", tok, 502, "not connected", true},
	}
	for _, tt := range tests {
		before := asked
		resp, body := do(t, ts, tt.path, tt.token)
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s: %d %s, want %d", tt.path, resp.StatusCode, body, tt.status)
			continue
		}
		if (asked > before) != tt.asks {
			t.Errorf("GET %s: device asked = %v, want %v", tt.path, asked > before, tt.asks)
		}
		if tt.status == 200 {
			if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "image/jpeg" || cc != "no-store" || !bytes.Equal(body, jpeg) {
				t.Errorf("GET %s: %s, Cache-Control %q, body %q", tt.path, ct, cc, body)
			}
			if got := resp.Header.Get("X-Capture-Time"); got != "2025-11-25T00:00:00.123Z" {
				t.Errorf("X-Capture-Time %q", got)
			}
			continue
		}
		var e rest.Error
		if err := json.Unmarshal(body, &e); err != nil || e.Status != tt.status || !strings.Contains(e.Error, tt.reason) {
			t.Errorf("GET %s: body %s, want a JSON error with status %d mentioning %q", tt.path, body, tt.status, tt.reason)
		}
	}
}

// TestSnapshotTimeout: a device that never answers gets 504 with a JSON
// reason once SnapshotTimeout has passed (the twin ends at ctx's deadline).
func TestSnapshotTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits SnapshotTimeout")
	}
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	reg.UpdateState(api.State{DeviceID: "cam-1", Online: true})
	s, err := New(Options{Store: store.NewMem(store.Retention{}), Registry: reg, Tokens: map[string]string{tok: "alice"},
		Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Snapshots: snapshotFunc(func(ctx context.Context, _, _ string, _ int) (api.SnapshotReply, error) {
			<-ctx.Done()
			return api.SnapshotReply{}, fmt.Errorf("no reply: %w", ctx.Err())
		})})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	resp, body := do(t, ts, "/api/v1/devices/cam-1/cameras/any/snapshot", tok)
	var e rest.Error
	if resp.StatusCode != http.StatusGatewayTimeout || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "did not answer within 5s") {
		t.Fatalf("%d %s, want 504 with a reason", resp.StatusCode, body)
	}
}
