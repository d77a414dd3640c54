package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/fleet/api"
	"edgefleet/models/modeltest"
)

// TestShadowCommands: rollouts create --shadow (and its flag errors),
// show --shadow after a device failed its shadow phase, and accept.
func TestShadowCommands(t *testing.T) {
	model := modeltest.Path(t, "models", "yolov5n-int8.tflite")
	t.Setenv("EDGEFLEET_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	keyDir := t.TempDir()
	genKey(t, keyDir)
	url, eng := fleetdOTAEngine(t, keyDir)
	auth := []string{"--server", url, "--token", token}
	run := func(args ...string) (int, string, string) { return fleetctl(t, append(args, auth...)...) }
	if code, out, errOut := run("models", "push", model, "--name", "m", "--version", "2"); code != 0 {
		t.Fatalf("push: %d %s %s", code, out, errOut)
	}
	create := []string{"rollouts", "create", "--model", "m@2", "--canary", "0", "--waves", "100%", "--max-failures", "1"}
	for _, bad := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--shadow", "10m"}, "min_agreement"},
		{[]string{"--min-agreement", "0.9"}, "need shadow"},
		{[]string{"--shadow", "10m", "--min-agreement", "0.9", "--shadow-sample", "0.25"}, `shadow_sample: "0.25" is not 1/N`},
		{[]string{"--shadow", "10m", "--min-agreement", "0.9", "--shadow-cpu", "250%"}, `shadow_cpu: "250%" is not a share of one core`},
		{[]string{"--shadow", "soon", "--min-agreement", "0.9"}, `shadow: "soon" is not a positive duration`},
	} {
		if code, _, errOut := run(append(create, bad.flags...)...); code != 2 || !strings.Contains(errOut, bad.want) {
			t.Errorf("%v: exit %d, %s", bad.flags, code, errOut)
		}
	}
	code, out, errOut := run(append(create, "--shadow", "10m", "--min-agreement", "0.9", "--shadow-sample", "1/4", "--shadow-cpu", "30%")...)
	if code != 0 || !strings.Contains(out, "shadow 10m0s, min agreement 0.9, 1/4 of frames, 30% of a core") {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	ctx := context.Background()
	if err := eng.Step(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := eng.Get("r1")
	if err != nil {
		t.Fatal(err)
	}
	rep := &api.ShadowReport{Final: true, ElapsedS: 600, Frames: 321, Agreement: 0.62, MinAgreement: 0.9, LatencyRatio: 1.4,
		ShadowStats: api.ShadowStats{Precision: 0.7, Recall: 0.55, F1: 0.62, CountRatio: 0.79, ScoreShift: -0.04},
		Confusion:   []api.ShadowConfusion{{Serving: "car", Candidate: "truck", Count: 3}, {Serving: "person", Candidate: "dog", Count: 9}},
		Samples:     []api.ShadowSample{{Camera: "cam0", TimeUs: 1, Disagreement: 0.5, JPEG: []byte{0xff, 0xd8, 0xff, 0xd9}}}}
	samples := t.TempDir()
	if err := eng.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-1", JobID: r.Jobs[0].JobID, State: api.JobFailed, Shadow: rep}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args   []string
		code   int
		out    []string
		errOut string
	}{
		{[]string{"rollouts", "show", "r1", "--shadow"}, 0, []string{"AGREEMENT", "LATENCY RATIO", "cam-1", "failed", "0.620", "0.700", "0.550", "0.79", "-0.040", "1.40", "321",
			"person->dog x9, car->truck x3"}, ""},
		{[]string{"rollouts", "show", "r1", "--shadow", "--json"}, 0, []string{`"agreement": 0.62`, `"device_id": "cam-1"`}, ""},
		{[]string{"rollouts", "show", "r1", "--shadow", "--samples", samples}, 0, []string{"cam-1"}, ""},
		{[]string{"rollouts", "show", "r1"}, 0, []string{"Shadow", "min agreement 0.9", "agreement 0.620 below min-agreement 0.900",
			"SHADOW", "0 passed, 1 failed, 0 accepted; mean agreement 0.620"}, ""},
		{[]string{"rollouts", "accept", "r1"}, 2, nil, "--device"},
		{[]string{"rollouts", "accept", "r1", "--device", "cam-2"}, 1, nil, "did not fail its shadow phase"},
		{[]string{"rollouts", "accept", "r1", "--device", "cam-1", "--reason", "new lens"}, 0, []string{"cam-1 accepted", "0 failed"}, ""},
		{[]string{"rollouts", "show", "r1", "--shadow"}, 0, []string{"accepted (t)"}, ""},
	}
	for i, st := range steps {
		if i == 3 {
			if b, err := os.ReadFile(filepath.Join(samples, "cam-1-0.jpg")); err != nil || len(b) != 4 || b[0] != 0xff {
				t.Fatalf("saved sample: %x, %v", b, err)
			}
		}
		code, out, errOut := run(st.args...)
		if code != st.code || !strings.Contains(errOut, st.errOut) {
			t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", st.args, code, out, errOut)
		}
		for _, s := range st.out {
			if !strings.Contains(out, s) {
				t.Errorf("%v: stdout lacks %q:\n%s", st.args, s, out)
			}
		}
	}
}
