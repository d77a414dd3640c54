package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
	"edgefleet/models/meta"
	"edgefleet/models/modeltest"
)

// shadowPatience bounds each wait on the real processes (a busy machine
// runs yolo11n several times slower than an idle one).
const shadowPatience = 90 * time.Second

// TestShadowRolloutEndToEnd is issue 14 as a user runs it: a real fleetd
// (embedded broker) and two real `edge-agent run` processes serving yolov8n
// int8 on synthetic belt cameras; models pushed and rollouts created,
// watched and accepted with the real fleetctl. In turn:
//
//   - must-show 2: yolov8n re-released with its class names rotated is
//     stopped by the gate at the canary, before any device swaps, and
//     `rollouts show --shadow` names the rotated classes in its confusions;
//     accept on that aborted rollout is refused, naming what to do;
//   - yolo11n with --min-agreement 0.99 stops at the canary, its job's
//     reason naming the numbers; no device swaps;
//   - yolo11n again with 0.99 and --max-failures 1: the canary fails, the
//     operator accepts it while the rollout runs, and that device swaps to
//     yolo11n under the job id <job>-a while the other fails its phase;
//   - yolo11n with --min-agreement 0.05 to the other device: it passes and
//     swaps, so both devices end on yolo11n.
//
// The binaries are built without -race, so the models run at full speed;
// the candidate gets a whole core (--shadow-cpu 100%, one agent in its
// phase at a time) so a busy machine still compares a few frames in the
// 5 s phase: the budget is BenchmarkShadowServing's subject, not this one's.
func TestShadowRolloutEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fleetd, fleetctl and two edge-agents with real models")
	}
	s := startShadowFleet(t)
	s.relabelled(t)
	s.stopsAtCanary(t)
	accepted := s.acceptCanary(t)
	s.passes(t, accepted)
}

// shadowFleet is a fleetd with two agents, cam-1 (line 1) and cam-2 (line 2).
type shadowFleet struct {
	identityFleet
	labels []string // yolov8n's class names
}

var shadowCams = []string{"cam-1", "cam-2"}

func startShadowFleet(t *testing.T) *shadowFleet {
	t.Helper()
	bins := t.TempDir()
	s := &shadowFleet{identityFleet: identityFleet{dir: t.TempDir()}}
	fleetd := goBuild(t, bins, "edgefleet/fleet/cmd/fleetd")
	s.fleetctlBin = goBuild(t, bins, "edgefleet/fleet/cmd/fleetctl")
	s.agentBin = goBuild(t, bins, "edgefleet/agent/cmd/edge-agent")
	p := startFleetdWith(t, fleetd, s.dir, `
broker: {listen: "127.0.0.1:0"}
devices: [{id: cam-1, password: pw-cam-1}, {id: cam-2, password: pw-cam-2}]
ota: {job_timeout: 3m}
`)
	s.server = "http://" + p.http
	s.api = controllertest.Client(t, p.http)
	pub := filepath.Join(s.dir, "fleet.pub")
	s.fleetctl(t, "keys", "export", "-o", pub)
	model := modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite")
	for i, id := range shadowCams {
		box := filepath.Join(s.dir, id)
		os.MkdirAll(box, 0o755)
		cfg := filepath.Join(box, "agent.yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`device_id: %s
labels: {site: shadow, line: "%d"}
model: {path: %s, name: belt-detector, version: "1", threads: 1}
cameras:
  - {id: belt, source: synth, path: %[4]s, seed: %[2]d, fps: 2}
spool: {path: %[5]s}
fleet: {broker: "tcp://%[6]s", password: pw-%[1]s}
update:
  keys: [%[7]s]
  artifact_url: %[8]s
  policy: {max_latency_ratio: 20}
telemetry_interval: 1s
http: {listen: "127.0.0.1:0"}
`, id, i+1, model, modeltest.Path(t, "images"), filepath.Join(box, "spool.db"), p.mqtt, pub, s.server)), 0o600)
		start(t, s.agentBin, "run", "--config", cfg)
	}
	for _, id := range shadowCams {
		s.waitServing(t, id, "1")
	}
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if s.labels, _, err = meta.Labels("", data); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitServing waits until the device's detections come from
// belt-detector at version.
func (s *shadowFleet) waitServing(t *testing.T, device, version string) {
	t.Helper()
	testutil.WaitFor(t, device+"'s detections from belt-detector "+version, shadowPatience, func() bool {
		p, err := s.api.Detections(context.Background(), rest.DetectionQuery{Device: device, Limit: 1})
		return err == nil && len(p.Records) > 0 && p.Records[0].Model == "belt-detector" && p.Records[0].ModelVersion == version
	})
}

// checkServing checks that each device still reports version as its model.
func (s *shadowFleet) checkServing(t *testing.T, version string, devices ...string) {
	t.Helper()
	for _, id := range devices {
		d, err := s.api.Device(context.Background(), id)
		if err != nil || d.Model != "belt-detector" || d.ModelVersion != version {
			t.Errorf("%s serves %s %s (%v), want belt-detector %s", id, d.Model, d.ModelVersion, err, version)
		}
	}
}

// create runs `fleetctl rollouts create` with args and returns the id.
func (s *shadowFleet) create(t *testing.T, args ...string) string {
	t.Helper()
	var sum rest.RolloutSummary
	out := s.fleetctl(t, append([]string{"rollouts", "create", "--canary", "1", "--waves", "100%", "--health-window", "4s", "--shadow", "5s", "--shadow-cpu", "100%", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("rollouts create: %v\n%s", err, out)
	}
	return sum.ID
}

func (s *shadowFleet) final(t *testing.T, id string) rest.Rollout {
	t.Helper()
	return controllertest.WaitRollout(t, s.api, id, 2*shadowPatience, func(v rest.Rollout) bool { return controllertest.Final(v.State) })
}

// showShadow is `fleetctl rollouts show ID --shadow`, as text and as JSON.
func (s *shadowFleet) showShadow(t *testing.T, id string) (string, rest.RolloutShadow) {
	t.Helper()
	text := s.fleetctl(t, "rollouts", "show", id, "--shadow")
	var v rest.RolloutShadow
	if err := json.Unmarshal([]byte(s.fleetctl(t, "rollouts", "show", id, "--shadow", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	t.Logf("rollouts show %s:\n%s\nrollouts show %[1]s --shadow:\n%[3]s", id, s.fleetctl(t, "rollouts", "show", id), text)
	return text, v
}

// canary returns the rollout's canary job and the other one.
func canary(t *testing.T, v rest.Rollout) (c, other rest.Job) {
	t.Helper()
	if len(v.Jobs) != 2 {
		t.Fatalf("rollout %s has %d jobs, want 2", v.ID, len(v.Jobs))
	}
	if v.Jobs[0].Wave != 0 {
		return v.Jobs[1], v.Jobs[0]
	}
	return v.Jobs[0], v.Jobs[1]
}

// checkGateFailed checks that job failed its shadow phase with the numbers
// as its reason and min as the threshold.
func checkGateFailed(t *testing.T, j rest.Job, min string) {
	t.Helper()
	if j.State != api.JobFailed || !strings.Contains(j.Reason, "below min-agreement "+min) || !strings.Contains(j.Reason, "precision ") ||
		j.Shadow == nil || !j.Shadow.Final || j.Shadow.Passed || j.Shadow.Frames == 0 || j.Rollback != "" {
		t.Errorf("%s: %s %q, shadow %+v, rollback %q; want failed by the gate (min %s) with no rollback", j.DeviceID, j.State, j.Reason, j.Shadow, j.Rollback, min)
	}
}

// relabelled is must-show 2: the serving network with its class names
// rotated by one is stopped at the canary and its confusions name the
// rotation.
func (s *shadowFleet) relabelled(t *testing.T) {
	t.Helper()
	rotated := append(slices.Clone(s.labels[1:]), s.labels[0])
	labels := filepath.Join(s.dir, "rotated.txt")
	os.WriteFile(labels, []byte(strings.Join(rotated, "\n")+"\n"), 0o644)
	s.fleetctl(t, "models", "push", modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite"),
		"--name", "belt-detector", "--version", "1-relabelled", "--labels", labels, "--quiet")
	id := s.create(t, "--model", "belt-detector@1-relabelled", "--max-failures", "0", "--min-agreement", "0.5")
	v := s.final(t, id)
	c, other := canary(t, v)
	if v.State != rest.StateAborted || v.Succeeded != 0 || !strings.Contains(v.Reason, "1 of them failed the shadow gate") {
		t.Fatalf("relabelled rollout %s (%s), %d succeeded; want aborted at the canary by the shadow gate", v.State, v.Reason, v.Succeeded)
	}
	checkGateFailed(t, c, "0.500")
	if other.SentAt != (time.Time{}) || other.Shadow != nil {
		t.Errorf("the other device's job was sent (%s at %v): the gate should stop the rollout at the canary", other.State, other.SentAt)
	}
	text, sh := s.showShadow(t, id)
	next := map[string]string{}
	for i, l := range s.labels {
		next[l] = rotated[i]
	}
	if len(sh.Devices) != 1 || sh.Devices[0].Final == nil || len(sh.Devices[0].Final.Confusion) == 0 || len(sh.Devices[0].SampleURLs) == 0 {
		t.Fatalf("shadow of the relabelled rollout: %+v", sh.Devices)
	}
	for _, p := range sh.Devices[0].Final.Confusion {
		if next[p.Serving] != p.Candidate {
			t.Errorf("confusion %s->%s: the manifest calls %s %s", p.Serving, p.Candidate, p.Serving, next[p.Serving])
		}
	}
	top := sh.Devices[0].Final.Confusion[0]
	if !strings.Contains(text, top.Serving+"->"+top.Candidate) || !strings.Contains(text, rest.ShadowFailed) {
		t.Errorf("rollouts show --shadow names no %s->%s or no outcome:\n%s", top.Serving, top.Candidate, text)
	}
	if b, err := s.api.ShadowSample(context.Background(), id, c.DeviceID, 0); err != nil || len(b) < 2 || b[0] != 0xFF || b[1] != 0xD8 {
		t.Errorf("disagreement sample: %d bytes, %v", len(b), err)
	}
	_, err := s.fleetctlErr("rollouts", "accept", id, "--device", c.DeviceID)
	if err == nil || !strings.Contains(err.Error(), "aborted") || !strings.Contains(err.Error(), "new rollout") {
		t.Errorf("accept on the aborted rollout: %v; want refused, naming the state and what to do", err)
	}
	t.Logf("accept on the aborted rollout: %v", err)
	s.checkServing(t, "1", shadowCams...)
}

// stopsAtCanary is must-show 1's stop: yolo11n under a threshold it does
// not reach.
func (s *shadowFleet) stopsAtCanary(t *testing.T) {
	t.Helper()
	s.fleetctl(t, "models", "push", modeltest.Path(t, "models", "yolo11n_full_integer_quant.tflite"),
		"--name", "belt-detector", "--version", "2", "--quiet")
	id := s.create(t, "--model", "belt-detector@2", "--max-failures", "0", "--min-agreement", "0.99")
	v := s.final(t, id)
	c, _ := canary(t, v)
	if v.State != rest.StateAborted || v.Succeeded != 0 || !strings.Contains(v.Reason, "min-agreement 0.990") {
		t.Fatalf("yolo11n at 0.99: %s (%s), %d succeeded; want aborted at the canary by the shadow gate", v.State, v.Reason, v.Succeeded)
	}
	checkGateFailed(t, c, "0.990")
	t.Logf("yolo11n at 0.99: canary %s: %s", c.DeviceID, c.Reason)
	s.showShadow(t, id)
	s.checkServing(t, "1", shadowCams...)
}

// acceptCanary: with a failure budget the rollout runs on past the failed
// canary; the operator accepts it and it swaps under <job>-a. It returns
// the accepted device.
func (s *shadowFleet) acceptCanary(t *testing.T) string {
	t.Helper()
	id := s.create(t, "--model", "belt-detector@2", "--max-failures", "1", "--min-agreement", "0.99")
	var failed rest.Job
	controllertest.WaitRollout(t, s.api, id, shadowPatience, func(v rest.Rollout) bool {
		c, _ := canary(t, v)
		failed = c
		return c.State == api.JobFailed
	})
	out := s.fleetctl(t, "rollouts", "accept", id, "--device", failed.DeviceID, "--reason", "line 1 checked by hand")
	if !strings.Contains(out, failed.DeviceID+" accepted") {
		t.Errorf("rollouts accept printed %q", out)
	}
	v := s.final(t, id)
	c, other := canary(t, v)
	t.Logf("accept: %s (%s); canary %s %s %q; other %s %s %q", v.State, v.Reason, c.JobID, c.State, c.Reason, other.JobID, other.State, other.Reason)
	if v.State != rest.StateCompleted || v.Succeeded != 1 || v.Failed != 1 {
		t.Fatalf("rollout with the accepted canary: %s (%s), %d succeeded, %d failed; want completed, 1 and 1", v.State, v.Reason, v.Succeeded, v.Failed)
	}
	if c.State != api.JobSucceeded || c.JobID != failed.JobID+"-a" || c.Shadow == nil || c.Shadow.AcceptedBy == "" || c.Shadow.FailedJob != failed.JobID {
		t.Errorf("accepted canary: job %s %s, shadow %+v; want %s-a succeeded, accepted", c.JobID, c.State, c.Shadow, failed.JobID)
	}
	checkGateFailed(t, other, "0.990")
	text, _ := s.showShadow(t, id)
	if !strings.Contains(text, "accepted (") {
		t.Errorf("rollouts show --shadow does not show the acceptance:\n%s", text)
	}
	s.waitServing(t, c.DeviceID, "2")
	s.checkServing(t, "2", c.DeviceID)
	s.checkServing(t, "1", other.DeviceID)
	return c.DeviceID
}

// passes is must-show 1's proceed: yolo11n under a low threshold to the
// device still on yolov8n; it swaps.
func (s *shadowFleet) passes(t *testing.T, accepted string) {
	t.Helper()
	left, line := "cam-2", "2"
	if accepted == "cam-2" {
		left, line = "cam-1", "1"
	}
	id := s.create(t, "--model", "belt-detector@2", "--selector", "line="+line, "--max-failures", "0", "--min-agreement", "0.05")
	v := s.final(t, id)
	if v.State != rest.StateCompleted || v.Succeeded != 1 {
		t.Fatalf("yolo11n at 0.05: %s (%s), %d succeeded", v.State, v.Reason, v.Succeeded)
	}
	text, sh := s.showShadow(t, id)
	d := sh.Devices
	if len(d) != 1 || d[0].DeviceID != left || d[0].Final == nil || d[0].Final.Agreement < 0.05 || d[0].Final.Frames == 0 ||
		d[0].Shadow == nil || d[0].Shadow.Outcome() != rest.ShadowPassed || !strings.Contains(text, fmt.Sprintf("%.3f", d[0].Final.Agreement)) {
		t.Fatalf("shadow of the passing rollout: %+v\n%s", d, text)
	}
	s.waitServing(t, left, "2")
	s.checkServing(t, "2", shadowCams...)
}
