package rollout

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

func shadowSpec(maxFail string) Spec {
	sp := spec1000(maxFail)
	sp.Selector = nil
	sp.Waves = []float64{50, 100}
	sp.Shadow = &api.ShadowSpec{DurationS: 600, MinAgreement: 0.9, SampleEvery: 4, CPUPercent: 25}
	sp.JobTimeout = 20 * time.Minute
	return sp
}

// TestShadowGate: the canary's candidate disagrees with the serving model;
// the canary fails its shadow phase, the rollout aborts, no device has
// swapped, no rollback is sent (nothing to roll back), and the failure's
// reason carries the numbers. The reports are kept.
func TestShadowGate(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 10, "1"), newClock()
	s.agreement["cam-0000"] = 0.62
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	var shadowed int
	s.onUpdate = func(dev string, cmd api.Command) {
		if cmd.Shadow == nil || cmd.Shadow.MinAgreement != 0.9 || cmd.Shadow.SampleEvery != 4 {
			t.Errorf("command to %s: shadow %+v", dev, cmd.Shadow)
		}
		shadowed++
	}
	sum, err := e.Create(ctx, shadowSpec("0"))
	if err != nil {
		t.Fatal(err)
	}
	r := stepUntil(t, e, 10, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	if r.State != StateAborted || !strings.Contains(r.Reason, "1 failures exceed max-failures 0") ||
		!strings.Contains(r.Reason, "; 1 of them failed the shadow gate (agreement below min-agreement 0.900) and kept their model") {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	j := r.Jobs[0]
	if j.State != api.JobFailed || !strings.Contains(j.Reason, "agreement 0.620 below min-agreement 0.900") {
		t.Fatalf("canary job: %s %q", j.State, j.Reason)
	}
	if j.Shadow == nil || !j.Shadow.Final || j.Shadow.Passed || j.Shadow.Frames != 100 {
		t.Fatalf("canary shadow result %+v", j.Shadow)
	}
	for _, j := range r.Jobs {
		if j.Rollback != "" {
			t.Errorf("%s got a rollback (%s); a shadow phase swaps nothing", j.DeviceID, j.Rollback)
		}
		if v := s.dev(j.DeviceID).version; v != "1" {
			t.Errorf("%s runs %s", j.DeviceID, v)
		}
	}
	if shadowed != 1 {
		t.Fatalf("%d update commands, want the canary's only", shadowed)
	}
	if p := r.Summarize().Progress[0]; p.ShadowFailed != 1 || p.ShadowAgreement != 0.62 {
		t.Fatalf("canary progress %+v", p)
	}
	recs, err := e.Shadow(ctx, sum.ID)
	if err != nil || len(recs) != 1 || recs[0].Final == nil || recs[0].Latest == nil || len(recs[0].Final.Samples) != 1 {
		t.Fatalf("Shadow = %+v, %v", recs, err)
	}
}

// TestShadowNoFrames: a device whose phase compared no frame (its CPU
// budget skipped them all) reports agreement 1 (F1 of no boxes either side)
// and fails its job, as edge-agent does. The gate fails it too, with a
// reason that says so, so the wave counts it as a shadow failure and an
// operator can accept it.
func TestShadowNoFrames(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 10, "1"), newClock()
	s.agreement["cam-0000"] = noFrames
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sum, err := e.Create(ctx, shadowSpec("1"))
	if err != nil {
		t.Fatal(err)
	}
	r := stepUntil(t, e, 10, func(r *Rollout) bool { return r.Jobs[0].State == api.JobFailed }, sum.ID)
	j := r.Jobs[0]
	if j.Shadow == nil || !j.Shadow.Final || j.Shadow.Passed || !strings.Contains(j.Reason, "compared no frame in 600 s (40 skipped by the CPU budget)") {
		t.Fatalf("canary: %s %q, shadow %+v; want failed by the gate, no frame compared", j.State, j.Reason, j.Shadow)
	}
	// The other canary passed at 0.95; the mean leaves out the phase
	// that measured nothing.
	if p := r.Summarize().Progress[0]; p.ShadowFailed != 1 || p.ShadowPassed != 1 || p.ShadowAgreement != 0.95 {
		t.Fatalf("canary progress %+v", p)
	}
	if _, err := e.Act(ctx, sum.ID, Action{Kind: ActionAccept, Device: "cam-0000", By: "alice"}); err != nil {
		t.Fatalf("accept of the device that compared no frame: %v", err)
	}
}

// TestShadowPassAndAccept: every device but one agrees; the one that does
// not fails within the budget. An operator accepts it: the failure no
// longer counts, the device gets a new job without Shadow and swaps, and
// the acceptance is in the job and the history.
func TestShadowPassAndAccept(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 10, "1"), newClock()
	s.agreement["cam-0007"] = 0.85
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sum, err := e.Create(ctx, shadowSpec("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Act(ctx, sum.ID, Action{Kind: ActionAccept, Device: "cam-0003", By: "alice"}); !errors.Is(err, ErrState) {
		t.Fatalf("accept of a device that did not fail: %v", err)
	}
	if _, err := e.Act(ctx, sum.ID, Action{Kind: ActionAccept, Device: "nope", By: "alice"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("accept of an unknown device: %v", err)
	}
	// Results come back within the step that sends the jobs; the wave
	// ends at the next one.
	r := stepUntil(t, e, 20, func(r *Rollout) bool { return r.Jobs[7].State == api.JobFailed }, sum.ID)
	var accepted api.Command
	s.onUpdate = func(dev string, cmd api.Command) {
		if dev == "cam-0007" {
			accepted = cmd
		}
	}
	if r.State.Final() {
		t.Fatalf("rollout ended (%s) before the accept", r.Reason)
	}
	got, err := e.Act(ctx, sum.ID, Action{Kind: ActionAccept, Device: "cam-0007", By: "alice", Reason: "new camera angle"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Failed != 0 {
		t.Fatalf("failures after accept: %d", got.Failed)
	}
	r = stepUntil(t, e, 20, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	if r.State != StateCompleted || r.Summarize().Succeeded != 10 {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	j := r.Jobs[7]
	if accepted.Shadow != nil || accepted.JobID != j.JobID || !strings.HasSuffix(j.JobID, "-a") {
		t.Fatalf("accepted device's command: job %s shadow %+v (job %s)", accepted.JobID, accepted.Shadow, j.JobID)
	}
	if j.Shadow.AcceptedBy != "alice" || j.Shadow.FailedJob == "" || s.dev("cam-0007").version != "2" {
		t.Fatalf("job %+v shadow %+v", j, j.Shadow)
	}
	var found bool
	for _, tr := range r.Transitions {
		found = found || tr.By == "alice" && strings.Contains(tr.Reason, "accepted by alice: new camera angle")
	}
	if !found {
		t.Fatalf("history has no accept: %+v", r.Transitions)
	}
	p := r.Summarize().Progress
	if p[0].ShadowPassed+p[1].ShadowPassed+p[2].ShadowPassed != 9 || p[2].ShadowAccepted != 1 || p[2].ShadowFailed != 0 {
		t.Fatalf("progress %+v", p)
	}
	if _, err := e.Act(ctx, sum.ID, Action{Kind: ActionAccept, Device: "cam-0007", By: "alice"}); !errors.Is(err, ErrState) {
		t.Fatalf("accept on a completed rollout: %v", err)
	}
}

// TestShadowReportsSurviveRestart: a periodic report, a restart of the
// engine on the same database, then the final report: both are there.
func TestShadowReportsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 1, "1"), newClock()
	s.set("cam-0000", func(d *simDevice) { d.behave = behaveSilent })
	path := dbPath(t)
	e := openEngine(t, path, s, c)
	sp := shadowSpec("0")
	sp.Canary = 0
	sum, err := e.Create(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	r := stepUntil(t, e, 5, func(r *Rollout) bool { return r.Jobs[0].State == JobDispatched }, sum.ID)
	job := r.Jobs[0].JobID
	rep := &api.ShadowReport{ElapsedS: 30, Frames: 12, Agreement: 0.97, MinAgreement: 0.9}
	if err := e.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-0000", JobID: job, State: api.JobShadow, Shadow: rep}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openEngine(t, path, s, c)
	defer e.Close()
	recs, err := e.Shadow(ctx, sum.ID)
	if err != nil || len(recs) != 1 || recs[0].Latest == nil || recs[0].Latest.Frames != 12 {
		t.Fatalf("after restart: %+v, %v", recs, err)
	}
	if r, _ := e.Get(sum.ID); r.Jobs[0].State != api.JobShadow || r.Jobs[0].Shadow.Agreement != 0.97 {
		t.Fatalf("job after restart: %+v", r.Jobs[0])
	}
	fin := *rep
	fin.Final, fin.Frames = true, 99
	if err := e.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-0000", JobID: job, State: api.JobInstalling, Shadow: &fin}); err != nil {
		t.Fatal(err)
	}
	recs, _ = e.Shadow(ctx, sum.ID)
	if recs[0].Final == nil || recs[0].Final.Frames != 99 || recs[0].Latest.Frames != 12 {
		t.Fatalf("final: %+v", recs[0])
	}
}

func TestShadowSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		f    func(*Spec)
		want string
	}{
		{"ok", func(*Spec) {}, ""},
		{"firmware", func(s *Spec) { s.Artifact.Kind = "firmware" }, "models only"},
		{"bad agreement", func(s *Spec) { s.Shadow.MinAgreement = 1.5 }, "min_agreement"},
		{"timeout too short", func(s *Spec) { s.JobTimeout = 11 * time.Minute }, "must exceed the shadow phase"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := shadowSpec("0")
			tc.f(&sp)
			err := sp.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
