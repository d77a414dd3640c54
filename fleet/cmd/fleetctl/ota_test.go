package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/fleet/api"
	"edgefleet/fleet/artifact"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/server"
	"edgefleet/fleet/store"
	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

type nopDispatcher struct{}

func (nopDispatcher) Dispatch(context.Context, string, api.Command) error { return nil }

// genKey writes a key pair keyDir/fleet.key and fleet.pub (creating
// keyDir) and returns its id.
func genKey(t *testing.T, keyDir string) string {
	t.Helper()
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	id, err := manifest.GenerateKey(keyDir, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fleetdOTA starts the REST server with the model registry and rollout
// engine, and a key ring whose signing key is keyDir/fleet.key.
func fleetdOTA(t *testing.T, keyDir string) string {
	t.Helper()
	url, _ := fleetdOTAEngine(t, keyDir)
	return url
}

// fleetdOTAEngine is fleetdOTA, with its rollout engine.
func fleetdOTAEngine(t *testing.T, keyDir string) (string, *rollout.Engine) {
	t.Helper()
	dir := t.TempDir()
	reg, err := registry.Open(filepath.Join(dir, "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	reg.UpdateState(api.State{DeviceID: "cam-1", Online: true, Labels: map[string]string{"site": "a"}, Model: "yolov8n", ModelVersion: "1"})
	reg.UpdateState(api.State{DeviceID: "cam-2", Online: true, Labels: map[string]string{"site": "a"}, Model: "yolov8n", ModelVersion: "1"})
	priv, _, err := manifest.LoadPrivateKey(filepath.Join(keyDir, "fleet.key"))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := artifact.OpenBoltRing(filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	if _, _, err := ring.Init(context.Background(), priv); err != nil {
		t.Fatal(err)
	}
	arts, err := artifact.Open(filepath.Join(dir, "artifacts"), artifact.Options{Seal: artifact.RingSigner(ring)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { arts.Close() })
	eng, err := rollout.Open(filepath.Join(dir, "rollouts.db"), rollout.Options{Devices: rollout.Registry{R: reg}, Dispatcher: nopDispatcher{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	arts.SetInUse(eng)
	s, err := server.New(server.Options{Store: store.NewMem(store.Retention{}), Registry: reg, Tokens: map[string]string{token: "t"},
		Logger: slog.New(slog.DiscardHandler), OTA: &server.OTA{Artifacts: arts, Rollouts: eng, Keys: ring}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL, eng
}

func TestOTACommands(t *testing.T) {
	model := modeltest.Path(t, "models", "yolov8n_int8.tflite")
	labels := modeltest.Path(t, "models", "coco80.txt")
	t.Setenv("EDGEFLEET_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	keyDir := t.TempDir()
	keyID := genKey(t, keyDir)
	url := fleetdOTA(t, keyDir)
	auth := []string{"--server", url, "--token", token}
	tests := []struct {
		name   string
		args   []string
		code   int
		out    []string
		errOut string
	}{
		{"keys list", append([]string{"keys", "list"}, auth...), 0, []string{"ID  ", "SIGNING", "CREATED", "RETIRED", keyID + "  yes"}, ""},
		{"keys generate is gone", []string{"keys", "generate", "--dir", keyDir}, 2, nil, "unknown"},
		{"push", append([]string{"models", "push", model, "--name", "yolov8n", "--version", "2", "--labels", labels}, auth...), 0, []string{"pushed yolov8n@2", "signed by key " + keyID}, ""},
		{"push again", append([]string{"models", "push", model, "--name", "yolov8n", "--version", "2", "--quiet"}, auth...), 1, nil, "already used: model yolov8n@2 (HTTP 409)"},
		{"push no version", append([]string{"models", "push", model, "--name", "yolov8n"}, auth...), 2, nil, "--version"},
		{"push missing file", append([]string{"models", "push", "/nonexistent.tflite", "--name", "x", "--version", "1"}, auth...), 1, nil, "no such file"},
		{"push not a model", append([]string{"models", "push", labels, "--name", "x", "--version", "1"}, auth...), 1, nil, "not a .tflite model"},
		{"list", append([]string{"models", "list"}, auth...), 0, []string{"NAME", "yolov8n", "[1 640 640 3]", "80"}, ""},
		{"show", append([]string{"models", "show", "yolov8n@2"}, auth...), 0, []string{"Output", "Signed by", keyID}, ""},
		{"show bad", append([]string{"models", "show", "yolov8n"}, auth...), 2, nil, "NAME@VERSION"},
		{"show missing", append([]string{"models", "show", "yolov8n@7"}, auth...), 1, nil, "HTTP 404"},
		{"create no artifact", append([]string{"rollouts", "create", "--selector", "site=a"}, auth...), 2, nil, "--model NAME@VERSION or --firmware"},
		{"create both", append([]string{"rollouts", "create", "--model", "a@1", "--firmware", "b@2"}, auth...), 2, nil, "--model NAME@VERSION or --firmware"},
		{"create missing firmware", append([]string{"rollouts", "create", "--firmware", "edge-agent@9"}, auth...), 1, nil, "HTTP 404"},
		{"create bad waves", append([]string{"rollouts", "create", "--model", "yolov8n@2", "--waves", "10%,x"}, auth...), 2, nil, "waves"},
		{"create bad rate", append([]string{"rollouts", "create", "--model", "yolov8n@2", "--max-failure-rate", "150%"}, auth...), 2, nil, "max failure rate"},
		{"create bad max", append([]string{"rollouts", "create", "--model", "yolov8n@2", "--max-failures", "lots"}, auth...), 2, nil, "max failures"},
		{"create", append([]string{"rollouts", "create", "--model", "yolov8n@2", "--selector", "site=a", "--canary", "1", "--waves", "50%,100%", "--max-failures", "1", "--health-window", "2m"}, auth...), 0, []string{"rollout r1: yolov8n@2 to 2 devices (site=a)"}, ""},
		{"delete in use", append([]string{"models", "delete", "yolov8n@2"}, auth...), 1, nil, "in use by rollouts r1"},
		{"rollouts list", append([]string{"rollouts", "list"}, auth...), 0, []string{"r1", "yolov8n@2", "site=a", "pending"}, ""},
		{"show rollout", append([]string{"rollouts", "show", "r1"}, auth...), 0, []string{"WAVE", "canary", "1 (50%)", "cam-1", "r1-", "pending", "Job states     pending 2"}, ""},
		{"show missing rollout", append([]string{"rollouts", "show", "r9"}, auth...), 1, nil, "not found"},
		{"pause", append([]string{"rollouts", "pause", "r1"}, auth...), 0, []string{"paused"}, ""},
		{"pause again", append([]string{"rollouts", "pause", "r1"}, auth...), 1, nil, "HTTP 409"},
		{"resume", append([]string{"rollouts", "resume", "r1"}, auth...), 0, []string{"rollout r1: pending"}, ""},
		{"abort", append([]string{"rollouts", "abort", "r1", "--reason", "wrong site"}, auth...), 0, []string{"aborted"}, ""},
		// No device ever connected: both jobs end cancelled, not pending.
		{"abort reason", append([]string{"rollouts", "show", "r1"}, auth...), 0, []string{"wrong site", "Job states     cancelled 2",
			"2 cancelled (never sent", "CANCELLED", "not sent, the rollout stopped first: aborted by operator: wrong site"}, ""},
		{"list with cancelled", append([]string{"rollouts", "list"}, auth...), 0, []string{"CANCELLED", "aborted", "0/1     2 "}, ""},
		{"rollback", append([]string{"rollouts", "rollback", "r1"}, auth...), 0, []string{"rolled_back"}, ""},
		{"delete", append([]string{"models", "delete", "yolov8n@2"}, auth...), 0, []string{"deleted yolov8n@2"}, ""},
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
}

func TestProgressBar(t *testing.T) {
	var out strings.Builder
	p := &progress{r: strings.NewReader(strings.Repeat("x", 3<<20)), w: &out, label: "pushing m@1", total: 3 << 20}
	n, err := io.Copy(io.Discard, p)
	if err != nil || n != 3<<20 {
		t.Fatalf("copied %d: %v", n, err)
	}
	if !strings.HasSuffix(out.String(), "[==============================] 100% 3.1/3.1 MB") || !strings.HasPrefix(out.String(), "\rpushing m@1 [") {
		t.Fatalf("bar %q", out.String())
	}
}
