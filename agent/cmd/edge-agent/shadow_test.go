package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models/manifest"
	"edgefleet/models/meta"
	"edgefleet/models/modeltest"
)

// TestRunShadowUpdate is issue 14's device side in a real agent process:
// edge-agent serves yolov8n int8 on two synthetic belt cameras; over MQTT it
// gets the same network re-released with its class names rotated by one (cat→dog),
// with a shadow phase. It reports shadow with figures while the candidate
// runs beside the serving model, then fails the job naming the confusion,
// with the final report and its disagreement samples on the job topic (a
// payload the fleet's decoder accepts), and never swaps: the events that
// follow still come from the serving model under its own name.
func TestRunShadowUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run with real models")
	}
	device := "box-shadow"
	s := &store{events: map[uint64]api.Event{}}
	f := &embeddedFleet{t: t, addr: freeAddr(t), device: device, store: s}
	f.up()
	jobs := watchJobs(t, f.b, device)
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.GenerateKey(keyDir, "fleet"); err != nil {
		t.Fatal(err)
	}
	model := modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite")
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	labels, _, err := meta.Labels("", data)
	if err != nil {
		t.Fatal(err)
	}
	rotated := append(slices.Clone(labels[1:]), labels[0])
	man, err := manifest.ForModel(data, "yolov8n", "2-relabelled", rotated, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	arts := &artifactServer{device: device, token: "pw", files: map[string][]byte{man.SHA256: data}}
	srv := httptest.NewServer(arts)
	t.Cleanup(srv.Close)
	cfg := updateConfig(t, dir, device, model, f.url(), filepath.Join(keyDir, "fleet.pub"), srv.URL, "")
	startAgent(t, cfg)
	testutil.WaitFor(t, "first detections stored", otaPatience, func() bool { n, _ := s.newest(); return n >= 2 })

	o := &ota{t: t, device: device, f: f, jobs: jobs, keyDir: keyDir, man: man}
	c := api.Command{JobID: "shadow-relabelled", Kind: api.CommandModelUpdate, Artifact: o.artifact(""),
		Shadow: &api.ShadowSpec{DurationS: 3, MinAgreement: 0.5, CPUPercent: 100}}
	end := o.end(c)
	t.Logf("%v: %s", jobs.path(c.JobID), end.Reason)
	if end.State != api.JobFailed || !strings.Contains(end.Reason, "shadow agreement 0.00 below 0.50") || !strings.Contains(end.Reason, "; confusion ") {
		t.Fatalf("ended %s %q, want failed naming the confusion", end.State, end.Reason)
	}
	if p := jobs.path(c.JobID); slices.Contains(p, api.JobInstalling) || !slices.Contains(p, api.JobShadow) {
		t.Errorf("job went %v, want a shadow phase and no install", p)
	}
	r := end.Shadow
	if r == nil || !r.Final || r.Frames == 0 || len(r.Cameras) == 0 || len(r.Samples) == 0 {
		if r != nil {
			r.Samples = nil // not the JPEG bytes in the log
		}
		t.Fatalf("final report on the terminal status (samples left out): %+v", r)
	}
	next := map[string]string{}
	for i, l := range labels {
		next[l] = rotated[i]
	}
	for _, p := range r.Confusion {
		if next[p.Serving] != p.Candidate {
			t.Errorf("confusion %s→%s: the manifest calls %s %s", p.Serving, p.Candidate, p.Serving, next[p.Serving])
		}
	}
	for _, smp := range r.Samples {
		if len(smp.JPEG) < 2 || smp.JPEG[0] != 0xFF || smp.JPEG[1] != 0xD8 {
			t.Errorf("sample of %s is not a JPEG", smp.Camera)
		}
	}
	// Events after the phase still name the serving model, and its labels.
	after := time.Now()
	testutil.WaitFor(t, "events after the shadow phase", otaPatience, func() bool { return len(s.versionsSince(after)) > 0 })
	if v := s.versionsSince(after); len(v) != 1 || v["yolov8n_full_integer_quant 1"] == 0 {
		t.Errorf("events after the failed shadow name %v, want only the serving model", v)
	}
}
