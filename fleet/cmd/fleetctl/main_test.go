package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/server"
	"edgefleet/fleet/store"
	"edgefleet/internal/cli"
)

const token = "fleetctl-test-token-123"

// fleetd starts the real REST server over an in-memory store with two devices.
func fleetd(t *testing.T) string {
	t.Helper()
	st := store.NewMem(store.Retention{})
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	reg.UpdateState(api.State{DeviceID: "cam-1", Online: true, Labels: map[string]string{"site": "plant-a", "line": "3"}, Model: "yolov8n", ModelVersion: "2", Engine: "xnnpack"})
	reg.UpdateState(api.State{DeviceID: "cam-2", Online: false, Labels: map[string]string{"site": "plant-b"}})
	reg.UpdateTelemetry(api.Telemetry{DeviceID: "cam-1", Cameras: []api.CameraStats{{ID: "front", Up: true, FPS: 14.5}}, InferP50Ms: 21})
	now := time.Now()
	var ev []api.Event
	for i := range 120 {
		ev = append(ev, api.Event{Seq: uint64(i + 1), CameraID: "front", Time: now.Add(-time.Duration(i) * time.Second).UnixMicro(), Label: []string{"person", "forklift"}[i%2], Score: 0.9, Box: [4]float32{1, 2, 3, 4}})
	}
	st.Ingest(context.Background(), "cam-1", ev)
	s, err := server.New(server.Options{Store: st, Registry: reg, Tokens: map[string]string{token: "t"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL
}

func fleetctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestCommands(t *testing.T) {
	url := fleetd(t)
	t.Setenv("EDGEFLEET_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	auth := []string{"--server", url, "--token", token}
	tests := []struct {
		name   string
		args   []string
		code   int
		out    []string // substrings of stdout
		errOut string   // substring of stderr
	}{
		{"list", append([]string{"devices", "list"}, auth...), 0, []string{"ID", "SITE", "cam-1", "plant-a", "online", "yolov8n 2", "cam-2", "offline"}, ""},
		{"list site", append([]string{"devices", "list", "--site", "plant-b"}, auth...), 0, []string{"cam-2"}, ""},
		{"show", append([]string{"devices", "show", "cam-1"}, auth...), 0, []string{"cam-1", "site=plant-a", "camera front", "14.5 fps"}, ""},
		{"show flags after id", append([]string{"devices", "show"}, append(auth, "cam-1", "--json")...), 0, []string{`"id": "cam-1"`}, ""},
		{"show missing", append([]string{"devices", "show", "nope"}, auth...), 1, nil, `device "nope" not found (HTTP 404)`},
		{"show no id", append([]string{"devices", "show"}, auth...), 2, nil, "takes 1 argument"},
		{"query", append([]string{"detections", "query", "--label", "forklift", "--limit", "3"}, auth...), 0, []string{"TIME", "cam-1", "forklift"}, ""},
		{"query label in any case", append([]string{"detections", "query", "--label", "Forklift", "--limit", "3"}, auth...), 0, []string{"cam-1", "forklift"}, ""},
		{"count label in any case", append([]string{"detections", "count", "--label", "PERSON", "--from", "-10m"}, auth...), 0, []string{"TOTAL", "60"}, ""},
		{"export has no --json", append([]string{"detections", "export", "--json"}, auth...), 2, nil, "unknown flag --json"},
		{"delete has no --json", append([]string{"models", "delete", "m@1", "--json"}, auth...), 2, nil, "unknown flag --json"},
		{"global flags before the command", append(append([]string{}, auth...), "devices", "show", "cam-1"), 0, []string{"site=plant-a"}, ""},
		{"help", []string{"devices", "--help"}, 0, []string{"usage: fleetctl devices <command>", "devices show"}, ""},
		{"count", append([]string{"detections", "count", "--from", "-10m", "--bucket", "1m"}, auth...), 0, []string{"TOTAL", "120"}, ""},
		{"export", append([]string{"detections", "export", "--format", "csv", "--label", "person"}, auth...), 0, []string{"device_id,seq,camera_id", "cam-1,"}, ""},
		{"export bad format", append([]string{"detections", "export", "--format", "xml"}, auth...), 2, nil, "not supported"},
		{"wrong token", []string{"devices", "list", "--server", url, "--token", "wrong"}, 1, nil, "refused the operator token"},
		{"no token", []string{"devices", "list", "--server", url}, 2, nil, "no operator token"},
		{"bad server", []string{"devices", "list", "--server", "ftp://x", "--token", token}, 2, nil, "not an http(s) URL"},
		{"unknown command", []string{"frobnicate"}, 2, nil, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := fleetctl(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if !strings.Contains(errOut, tt.errOut) {
				t.Errorf("stderr lacks %q:\n%s", tt.errOut, errOut)
			}
		})
	}
	t.Run("query json", func(t *testing.T) {
		code, out, errOut := fleetctl(t, append([]string{"detections", "query", "--limit", "150", "--json"}, auth...)...)
		var recs []store.Record
		if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 120 {
			t.Fatalf("exit %d, %d records, %s", code, len(recs), errOut)
		}
	})
}

func TestServerAndTokenSources(t *testing.T) {
	url := fleetd(t)
	t.Setenv("HOME", t.TempDir())
	cfg := filepath.Join(t.TempDir(), "fleetctl.yaml")
	os.WriteFile(cfg, []byte("server: "+url+"\ntoken: "+token+"\n"), 0o600)

	t.Run("config file", func(t *testing.T) {
		if code, out, e := fleetctl(t, "devices", "list", "--config", cfg); code != 0 || !strings.Contains(out, "cam-1") {
			t.Fatalf("exit %d: %s %s", code, out, e)
		}
	})
	t.Run("env overrides config", func(t *testing.T) {
		t.Setenv("EDGEFLEET_TOKEN", "wrong-token")
		if code, _, e := fleetctl(t, "devices", "list", "--config", cfg); code != 1 || !strings.Contains(e, "refused") {
			t.Fatalf("exit %d: %s", code, e)
		}
	})
	t.Run("flag overrides env", func(t *testing.T) {
		t.Setenv("EDGEFLEET_TOKEN", "wrong-token")
		t.Setenv("EDGEFLEET_SERVER", "http://127.0.0.1:1")
		if code, _, e := fleetctl(t, "devices", "list", "--server", url, "--token", token); code != 0 {
			t.Fatalf("exit %d: %s", code, e)
		}
	})
	t.Run("strict config", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(bad, []byte("server: x\ntokn: y\n"), 0o600)
		if code, _, e := fleetctl(t, "devices", "list", "--config", bad); code != 1 || !strings.Contains(e, "tokn") {
			t.Fatalf("exit %d: %s", code, e)
		}
	})
}

func TestServerDownAndSlow(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	code, _, e := fleetctl(t, "devices", "list", "--server", "http://"+addr, "--token", token)
	if code != 1 || !strings.Contains(e, "cannot reach fleetd") {
		t.Fatalf("server down: exit %d: %s", code, e)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	code, _, e = fleetctl(t, "devices", "list", "--server", slow.URL, "--token", token, "--timeout", "200ms")
	if code != 1 || !strings.Contains(e, "did not answer in 200ms") {
		t.Fatalf("slow server: exit %d: %s", code, e)
	}
}

// TestCommandArgsNamed: every command that takes arguments names them in
// commandArgs, so its usage line says what they are (not "ARG").
func TestCommandArgsNamed(t *testing.T) {
	for name, c := range commands {
		var pe *cli.ParseError
		err := c.run(context.Background(), []string{"--help"}, io.Discard)
		if !errors.As(err, &pe) || !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: %v, want the help request of cli.Parse (parseFlags)", name, err)
			continue
		}
		if pe.NArgs > 0 && len(strings.Fields(commandArgs[name])) != pe.NArgs {
			t.Errorf("%s takes %d argument(s); commandArgs names %q", name, pe.NArgs, commandArgs[name])
		}
	}
}
