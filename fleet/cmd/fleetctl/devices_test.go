package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/fleet/ingest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/server"
	"edgefleet/fleet/store"
)

func TestDevicesListAndDelete(t *testing.T) {
	url := fleetd(t)
	t.Setenv("EDGEFLEET_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	auth := []string{"--server", url, "--token", token}
	tests := []struct {
		name   string
		args   []string
		code   int
		out    []string
		notOut string
		errOut string
	}{
		{"search", []string{"devices", "list", "--q", "CAM-2"}, 0, []string{"cam-2", "offline"}, "cam-1", ""},
		{"status", []string{"devices", "list", "--status", "online"}, 0, []string{"cam-1"}, "cam-2", ""},
		{"model and version", []string{"devices", "list", "--model", "yolov8n", "--version", "2"}, 0, []string{"cam-1"}, "cam-2", ""},
		{"sorted and paged", []string{"devices", "list", "--sort", "-id", "--limit", "1"}, 0, []string{"cam-2", "(1-1 of 2)"}, "cam-1", ""},
		{"bad sort", []string{"devices", "list", "--sort", "color"}, 1, nil, "", "sort"},
		{"delete keeps detections", []string{"devices", "delete", "cam-1"}, 0, []string{"cam-1 decommissioned (its detections stay"}, "", ""},
		{"gone from the list", []string{"devices", "list"}, 0, []string{"cam-2"}, "cam-1", ""},
		{"detections stay", []string{"detections", "count", "--from", "-10m", "--device", "cam-1"}, 0, []string{"120"}, "", ""},
		{"delete again", []string{"devices", "delete", "cam-1"}, 1, nil, "", "HTTP 404"},
		{"purge", []string{"devices", "delete", "cam-1", "--purge"}, 0, []string{"cam-1 decommissioned, 120 detections deleted"}, "", ""},
		{"detections gone", []string{"detections", "count", "--from", "-10m", "--device", "cam-1"}, 0, []string{"TOTAL"}, "120", ""},
		{"delete needs an id", []string{"devices", "delete"}, 2, nil, "", "takes 1 argument"},
	}
	for _, tt := range tests {
		code, out, errOut := fleetctl(t, append(tt.args, auth...)...)
		if code != tt.code {
			t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", tt.name, code, tt.code, out, errOut)
		}
		for _, s := range tt.out {
			if !strings.Contains(out, s) {
				t.Errorf("%s: stdout lacks %q:\n%s", tt.name, s, out)
			}
		}
		if tt.notOut != "" && strings.Contains(out, tt.notOut) {
			t.Errorf("%s: stdout has %q:\n%s", tt.name, tt.notOut, out)
		}
		if !strings.Contains(errOut, tt.errOut) {
			t.Errorf("%s: stderr lacks %q:\n%s", tt.name, tt.errOut, errOut)
		}
	}
}

// TestSimCleanup: fleetctl sim --cleanup decommissions its devices through
// the REST API when it ends.
func TestSimCleanup(t *testing.T) {
	auth := broker.NewStaticAuth()
	auth.SetService("sim", "sim-password")
	b := brokertest.Start(t, broker.Options{Addr: "127.0.0.1:0", Auth: auth, Logger: slog.New(slog.DiscardHandler)})
	st := store.NewMem(store.Retention{})
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	in, err := ingest.New(ingest.Embedded(b), ingest.Options{Store: st, Devices: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-in.Ready()
	srv, err := server.New(server.Options{Store: st, Registry: reg, Tokens: map[string]string{token: "t"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	reg.UpdateState(apiState("keep-1"))
	t.Setenv("EDGEFLEET_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())

	code, out, errOut := fleetctl(t, "sim", "--mqtt", "tcp://"+b.Addr(), "--devices", "3", "--rate", "5", "--duration", "1s",
		"--service-user", "sim", "--service-password", "sim-password", "--cleanup", "--purge", "--server", ts.URL, "--token", token)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "cleanup     3 devices decommissioned") {
		t.Errorf("output lacks the cleanup:\n%s", out)
	}
	var left []string
	for _, d := range reg.List(registry.Filter{}) {
		left = append(left, d.ID)
	}
	if strings.Join(left, ",") != "keep-1" {
		t.Errorf("registry after cleanup: %v", left)
	}
	if p, err := st.Query(context.Background(), store.Query{Device: "sim-0"}); err != nil || len(p.Records) != 0 {
		t.Errorf("sim-0 detections after purge: %d, %v", len(p.Records), err)
	}
}

func apiState(id string) api.State { return api.State{DeviceID: id, Online: true} }
