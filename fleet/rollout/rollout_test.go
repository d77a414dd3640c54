package rollout

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

func spec1000(maxFail string) Spec {
	th, _ := ParseThreshold(maxFail)
	return Spec{Artifact: testArtifact("2"), Selector: map[string]string{"site": "plant-a"}, Canary: 2,
		Waves: []float64{10, 50, 100}, MaxFailures: th, HealthWindow: 2 * time.Minute, JobTimeout: 10 * time.Minute}
}

func jobIndex(jobID string) int {
	i, _ := strconv.Atoi(jobID[strings.LastIndexByte(jobID, '-')+1:])
	return i
}

// TestThousandDevicesComplete: canary + 3 waves to 1,000 simulated devices,
// each wave sent only once the one before has ended.
func TestThousandDevicesComplete(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 1000, "1"), newClock()
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sum, err := e.Create(ctx, spec1000("5%"))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Targets != 1000 || sum.MaxFailures != 50 || sum.State != StatePending {
		t.Fatalf("summary %+v", sum)
	}
	r, _ := e.Get(sum.ID)
	if want := []int{2, 100, 500, 1000}; !equal(r.WaveEnd, want) {
		t.Fatalf("wave ends %v, want %v", r.WaveEnd, want)
	}
	var mu sync.Mutex
	done := map[int]bool{}
	var states []State
	s.onUpdate = func(dev string, cmd api.Command) {
		mu.Lock()
		defer mu.Unlock()
		i := jobIndex(cmd.JobID)
		wave := 0
		for i >= r.WaveEnd[wave] {
			wave++
		}
		if wave > 0 {
			for k := range r.WaveEnd[wave-1] {
				if !done[k] {
					t.Errorf("job %d (wave %d) sent before job %d of an earlier wave ended", i, wave, k)
				}
			}
		}
		if cmd.HealthWindowS != 120 || cmd.DeadlineMs == 0 || cmd.Artifact.Version != "2" {
			t.Errorf("command %+v", cmd)
		}
		done[i] = true // the simulated device answers within Dispatch
	}
	got := stepUntil(t, e, 20, func(r *Rollout) bool {
		if len(states) == 0 || states[len(states)-1] != r.State {
			states = append(states, r.State)
		}
		return r.State.Final()
	}, sum.ID)
	if got.State != StateCompleted {
		t.Fatalf("state %s: %s", got.State, got.Reason)
	}
	if want := []State{StateCanary, StateWave, StateCompleted}; !equalStates(states, want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	for _, id := range s.order {
		if d := s.dev(id); d.version != "2" || d.updates != 1 {
			t.Fatalf("%s: version %s after %d updates", id, d.version, d.updates)
		}
	}
	fs := got.Summarize()
	if fs.Succeeded != 1000 || fs.Failed != 0 || len(fs.Progress) != 4 || fs.Progress[3].Succeeded != 500 {
		t.Fatalf("summary %+v", fs)
	}
	if ids := e.ArtifactInUse(testArtifact("2").SHA256); len(ids) != 0 {
		t.Fatalf("completed rollout still holds its artifact: %v", ids)
	}
}

// TestThousandDevicesAbort: with 10% of the devices failing, the rollout
// aborts once the failures pass max-failures (the whole rollout's budget, no
// per-wave rate); the failed devices end on the old version, no update is
// sent after the abort, not even to the rest of the wave it happened in, and
// with rollback_on_abort false the successes stay on the new version.
func TestThousandDevicesAbort(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 1000, "1"), newClock()
	failing := map[string]bool{}
	for i, id := range s.order {
		if i%10 != 5 {
			continue
		}
		// 10% fail: a third stay broken, a third go back by themselves, a third never answer.
		failing[id] = true
		s.devices[id].behave = []string{behaveFail, behaveSelfRollback, behaveSilent}[(i/10)%3]
	}
	// Devices 900.. are offline: their wave-3 jobs must never be sent once aborted.
	for _, id := range s.order[900:] {
		s.devices[id].online = false
	}
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sp := spec1000("5%")
	no := false
	sp.RollbackOnAbort = &no
	sum, err := e.Create(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	var aborted bool
	var mu sync.Mutex
	s.onUpdate = func(dev string, cmd api.Command) {
		mu.Lock()
		defer mu.Unlock()
		if aborted {
			t.Errorf("update %s sent to %s after the abort", cmd.JobID, dev)
		}
	}
	r := stepUntil(t, e, 50, func(r *Rollout) bool {
		// Silent devices hold their wave until they time out.
		c.Advance(11 * time.Minute)
		return r.State.Final()
	}, sum.ID)
	if r.State != StateAborted || !strings.Contains(r.Reason, "exceed max-failures 5%") {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	mu.Lock()
	aborted = true
	mu.Unlock()
	sm := r.Summarize()
	// Wave 3 (500..999) is sent in order; the 51st failure (515, which fails
	// at once) stops it: 516.. are never sent, and end cancelled (neither
	// succeeded nor failed).
	if !strings.HasPrefix(r.Reason, "51 failures exceed") || sm.Progress[3].Cancelled != 484 || sm.Progress[3].Pending != 0 ||
		sm.Progress[2].Failed != 40 || sm.Cancelled != 484 || sm.Failed != 51 || sm.Targets != 1000 {
		t.Fatalf("aborted: %s; progress %+v", r.Reason, sm.Progress)
	}
	// The offline devices return; rollbacks still flow, updates do not.
	for _, id := range s.order[900:] {
		s.set(id, func(d *simDevice) { d.online = true })
	}
	for range 3 {
		c.Advance(11 * time.Minute) // the silent devices of wave 3 time out too
		if err := e.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r, _ = e.Get(sum.ID)
	var rolledBack, timedOut int
	for _, j := range r.Jobs {
		d := s.dev(j.DeviceID)
		if failing[j.DeviceID] && d.version != "1" {
			t.Errorf("failing device %s ends on version %s (job %s, rollback %q)", j.DeviceID, d.version, j.State, j.Rollback)
		}
		switch j.State {
		case api.JobFailed, JobTimedOut:
			if j.Rollback != api.JobSucceeded {
				t.Errorf("%s: job %s but rollback %q", j.DeviceID, j.State, j.Rollback)
			}
			rolledBack++
			if j.State == JobTimedOut {
				timedOut++
			}
		case api.JobSucceeded:
			if j.Rollback != "" || d.version != "2" {
				t.Errorf("%s succeeded but rollback %q, version %s", j.DeviceID, j.Rollback, d.version)
			}
		case api.JobRolledBack:
			if j.Rollback != "" || !strings.Contains(j.Reason, "health window") {
				t.Errorf("%s rolled back by itself; rollback %q reason %q", j.DeviceID, j.Rollback, j.Reason)
			}
		case JobPending:
			if d.updates != 0 || d.version != "1" {
				t.Errorf("%s never sent but got %d updates", j.DeviceID, d.updates)
			}
		}
	}
	if rolledBack == 0 || timedOut == 0 {
		t.Fatalf("rollbacks %d, timeouts %d: the test should exercise both", rolledBack, timedOut)
	}
	if _, err := e.Resume(sum.ID); !errors.Is(err, ErrState) {
		t.Fatalf("Resume of an aborted rollout = %v", err)
	}
}

// TestRestartMidRollout closes the engine after the canary and first wave,
// with jobs in flight, and reopens it on the same file: the rollout resumes
// and completes, and no device runs an update twice.
func TestRestartMidRollout(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 200, "1"), newClock()
	path := dbPath(t)
	e := openEngine(t, path, s, c)
	held := s.order[30] // in wave 2 (20..99)
	s.devices[held].behave = behaveHold
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Canary: 2, Waves: []float64{10, 50, 100},
		MaxFailures: Threshold{Count: 3}, JobTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	stepUntil(t, e, 10, func(r *Rollout) bool { return r.State == StateWave && r.Wave == 2 }, sum.ID)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.Pause(sum.ID); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pause after Close = %v", err)
	}

	e = openEngine(t, path, s, c)
	defer e.Close()
	r, err := e.Get(sum.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateWave || r.Wave != 2 || r.Jobs[30].State != api.JobQueued {
		t.Fatalf("reloaded state %s wave %d, held job %s", r.State, r.Wave, r.Jobs[30].State)
	}
	// The held device answers only after the restart.
	for range 3 {
		e.Step(ctx)
	}
	if r, _ := e.Get(sum.ID); r.Wave != 2 {
		t.Fatalf("wave %d started while a wave-2 job was in flight", r.Wave)
	}
	s.release(ctx, held, "2")
	r = stepUntil(t, e, 10, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	if r.State != StateCompleted {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	for _, id := range s.order {
		if d := s.dev(id); d.version != "2" || d.updates != 1 {
			t.Fatalf("%s: version %s, %d updates", id, d.version, d.updates)
		}
	}
	if got := e.List(); len(got) != 1 || got[0].Succeeded != 200 {
		t.Fatalf("List = %+v", got)
	}
}

// TestOfflineAndTimeout: a device offline when its wave starts gets its job
// when it returns; one that never returns times out and counts as failed.
func TestOfflineAndTimeout(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 4, "1"), newClock()
	s.devices["cam-0001"].online = false
	s.devices["cam-0002"].online = false
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Waves: []float64{100}, MaxFailures: Threshold{Count: 1},
		HealthWindow: time.Minute, JobTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.Step(ctx)
	e.Step(ctx)
	r, _ := e.Get(sum.ID)
	if r.Jobs[1].State != JobPending || r.Jobs[0].State != api.JobSucceeded {
		t.Fatalf("jobs %+v", r.Jobs)
	}
	c.Advance(5 * time.Minute)
	s.set("cam-0001", func(d *simDevice) { d.online = true })
	e.Step(ctx)
	r, _ = e.Get(sum.ID)
	if r.Jobs[1].State != api.JobSucceeded || r.State != StateWave {
		t.Fatalf("returning device: %+v, state %s", r.Jobs[1], r.State)
	}
	c.Advance(6 * time.Minute)
	r = stepUntil(t, e, 3, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	if r.State != StateCompleted || r.Jobs[2].State != JobTimedOut || !strings.Contains(r.Jobs[2].Reason, "pending") {
		t.Fatalf("state %s, stuck job %+v", r.State, r.Jobs[2])
	}
	if sm := r.Summarize(); sm.Failed != 1 || sm.Succeeded != 3 {
		t.Fatalf("summary %+v", sm)
	}
	// Rolling back: the device that never got the update gets no rollback either.
	if _, err := e.Rollback(sum.ID); err != nil {
		t.Fatal(err)
	}
	r = stepUntil(t, e, 3, func(r *Rollout) bool { return r.Summarize().RolledBack == 3 }, sum.ID)
	if r.Jobs[2].Rollback != "" {
		t.Fatalf("never-sent job got rollback %q", r.Jobs[2].Rollback)
	}
}

// TestSilentJobResent: a device's final report is lost in flight (as when
// the fleetd replica that received it is killed before storing it). The
// engine sends the job again after Options.Silence without a word; the
// device reports its final state again and the rollout completes instead
// of timing the job out and aborting (found by the soak run, issue 16).
func TestSilentJobResent(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 3, "1"), newClock()
	s.devices["cam-0001"].behave = behaveLoseReports
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Waves: []float64{100}, MaxFailures: Threshold{Count: 0},
		HealthWindow: time.Minute, JobTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	job := func(r *Rollout) Job {
		for _, j := range r.Jobs {
			if j.DeviceID == "cam-0001" {
				return j
			}
		}
		t.Fatal("no job for cam-0001")
		return Job{}
	}
	r := stepUntil(t, e, 3, func(r *Rollout) bool { return r.Summarize().Succeeded == 2 }, sum.ID)
	if j := job(r); j.State != api.JobQueued || r.State.Final() {
		t.Fatalf("before the silence: job %+v, rollout %s", j, r.State)
	}
	c.Advance(DefaultSilence - time.Second)
	e.Step(ctx)
	if r, _ = e.Get(sum.ID); job(r).State != api.JobQueued {
		t.Fatalf("resent before the silence ended: %+v", job(r))
	}
	c.Advance(time.Second)
	r = stepUntil(t, e, 3, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	if j := job(r); r.State != StateCompleted || j.State != api.JobSucceeded {
		t.Fatalf("after the silence: rollout %s, job %+v", r.State, j)
	}
	if d := s.dev("cam-0001"); d.updates != 1 || d.version != "2" {
		t.Fatalf("device ran the update %d times, version %s; want once, 2", d.updates, d.version)
	}
}

func TestOperations(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 20, "1"), newClock()
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	s.devices["cam-0005"].online = false
	sp := Spec{Artifact: testArtifact("2"), Canary: 2, Waves: []float64{50, 100}, MaxFailures: Threshold{Percent: 10}}
	sum, err := e.Create(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if ids := e.ArtifactInUse(sp.Artifact.SHA256); len(ids) != 1 || ids[0] != sum.ID {
		t.Fatalf("ArtifactInUse = %v", ids)
	}
	stepUntil(t, e, 5, func(r *Rollout) bool { return r.State == StateWave }, sum.ID)
	if _, err := e.Pause(sum.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pause(sum.ID); !errors.Is(err, ErrState) {
		t.Fatalf("second Pause = %v", err)
	}
	// Paused: the waiting job does not time out and nothing new is sent.
	c.Advance(time.Hour)
	s.set("cam-0005", func(d *simDevice) { d.online = true })
	for range 3 {
		e.Step(ctx)
	}
	r, _ := e.Get(sum.ID)
	if r.State != StatePaused || r.Wave != 1 || r.Jobs[5].State != JobPending {
		t.Fatalf("paused: state %s wave %d job %+v", r.State, r.Wave, r.Jobs[5])
	}
	if _, err := e.Resume(sum.ID); err != nil {
		t.Fatal(err)
	}
	r = stepUntil(t, e, 5, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	if r.State != StateCompleted || r.Jobs[5].State != api.JobSucceeded {
		t.Fatalf("after resume: %s, job %+v", r.State, r.Jobs[5])
	}
	if _, err := e.Abort(sum.ID, "x"); !errors.Is(err, ErrState) {
		t.Fatalf("Abort of a completed rollout = %v", err)
	}
	// Rolling back a completed rollout sends every device back.
	if _, err := e.Rollback(sum.ID); err != nil {
		t.Fatal(err)
	}
	r = stepUntil(t, e, 3, func(r *Rollout) bool { return r.Summarize().RolledBack == 20 }, sum.ID)
	for _, id := range s.order {
		if v := s.dev(id).version; v != "1" {
			t.Fatalf("%s on %s after rollback", id, v)
		}
	}
	if _, err := e.Rollback(sum.ID); !errors.Is(err, ErrState) {
		t.Fatalf("second Rollback = %v", err)
	}
	for _, id := range []string{"nope"} {
		if _, err := e.Pause(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Pause(%s) = %v", id, err)
		}
	}
	if err := e.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-0001", JobID: "zzz", State: api.JobFailed}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status for unknown job = %v", err)
	}
	if err := e.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-0002", JobID: r.Jobs[1].JobID, State: api.JobFailed}); err == nil {
		t.Fatal("status from the wrong device accepted")
	}

	// A second rollout: skip devices already on the version, and abort.
	s.set("cam-0000", func(d *simDevice) { d.version = "3" })
	s.set("cam-0003", func(d *simDevice) { d.online = false })
	sum2, err := e.Create(ctx, Spec{Artifact: testArtifact("3"), Selector: map[string]string{"line": "0"}, Waves: []float64{100}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ = e.Get(sum2.ID)
	if len(r.Jobs) != 7 || r.Jobs[0].State != JobSkipped || r.Spec.JobTimeout != 30*time.Minute {
		t.Fatalf("second rollout: %d jobs, first %+v, timeout %s", len(r.Jobs), r.Jobs[0], r.Spec.JobTimeout)
	}
	e.Step(ctx)
	if _, err := e.Abort(sum2.ID, "operator changed their mind"); err != nil {
		t.Fatal(err)
	}
	s.set("cam-0003", func(d *simDevice) { d.online = true })
	e.Step(ctx)
	r, _ = e.Get(sum2.ID)
	if r.State != StateAborted || r.Jobs[1].State != JobCancelled || s.dev("cam-0003").updates != 1 ||
		!strings.Contains(r.Jobs[1].Reason, "not sent") || !strings.Contains(r.Jobs[1].Reason, "operator changed their mind") {
		t.Fatalf("aborted rollout: %s, job %+v, updates %d", r.State, r.Jobs[1], s.dev("cam-0003").updates)
	}
	if _, err := e.Create(ctx, Spec{Artifact: testArtifact("3"), Selector: map[string]string{"line": "9"}, Waves: []float64{100}}); !errors.Is(err, ErrNoTargets) {
		t.Fatalf("Create with no targets = %v", err)
	}
}

// TestDispatchError: a job whose dispatch fails is sent again at the next step.
func TestDispatchError(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 3, "1"), newClock()
	s.failDispatch["cam-0001"] = true
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Waves: []float64{100}})
	if err != nil {
		t.Fatal(err)
	}
	e.Step(ctx)
	if err := e.Step(ctx); err == nil || !strings.Contains(err.Error(), "broker unavailable") {
		t.Fatalf("Step = %v, want the dispatch error", err)
	}
	r, _ := e.Get(sum.ID)
	if r.Jobs[1].State != JobPending {
		t.Fatalf("job after failed dispatch: %+v", r.Jobs[1])
	}
	s.mu.Lock()
	delete(s.failDispatch, "cam-0001")
	s.mu.Unlock()
	r = stepUntil(t, e, 3, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	if r.State != StateCompleted {
		t.Fatal(r.State)
	}
}

// TestRun drives the engine through Run with the real clock.
func TestRun(t *testing.T) {
	s := newSim(t, 50, "1")
	e, err := Open(dbPath(t), Options{Devices: s, Dispatcher: s, Tick: 10 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.eng = e
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Canary: 1, Waves: []float64{20, 100}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, _ := e.Get(sum.ID)
		if r.State == StateCompleted {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not completed: %+v", r.Summarize())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestParse(t *testing.T) {
	sel, err := ParseSelector("site=plant-a, line=3")
	if err != nil || sel["site"] != "plant-a" || sel["line"] != "3" || FormatSelector(sel) != "line=3,site=plant-a" {
		t.Fatalf("ParseSelector = %v %v", sel, err)
	}
	for _, bad := range []string{"site", "=x", "a=b=c", "a=1,a=2"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("ParseSelector(%q) accepted", bad)
		}
	}
	w, err := ParseWaves("10%,50%, 100")
	if err != nil || !equalF(w, []float64{10, 50, 100}) {
		t.Fatalf("ParseWaves = %v %v", w, err)
	}
	if _, err := ParseWaves("10%,x"); err == nil {
		t.Error("ParseWaves accepted x")
	}
	tests := []struct {
		in    string
		want  Threshold
		limit int // of 1000
		bad   bool
	}{
		{"5%", Threshold{Percent: 5}, 50, false},
		{"0.5%", Threshold{Percent: 0.5}, 5, false},
		{"3", Threshold{Count: 3}, 3, false},
		{"0", Threshold{}, 0, false},
		{"-1", Threshold{}, 0, true},
		{"101%", Threshold{}, 0, true},
		{"five", Threshold{}, 0, true},
	}
	for _, tc := range tests {
		got, err := ParseThreshold(tc.in)
		if (err != nil) != tc.bad || got != tc.want || !tc.bad && got.Limit(1000) != tc.limit {
			t.Errorf("ParseThreshold(%q) = %+v (limit %d), %v", tc.in, got, got.Limit(1000), err)
		}
	}
	rates := []struct {
		in   string
		want float64
		bad  bool
	}{
		{"5%", 0.05, false}, {"0.05", 0.05, false}, {"100%", 1, false}, {"0", 0, false},
		{"1.5", 0, true}, {"-1%", 0, true}, {"101%", 0, true}, {"NaN", 0, true}, {"x", 0, true},
	}
	for _, tc := range rates {
		if got, err := ParseRate(tc.in); (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v", tc.in, got, err)
		}
	}
	valid := Spec{Artifact: testArtifact("2"), Waves: []float64{10, 100}, MaxFailureRate: 0.05, MinExecutions: 10}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	specs := []struct {
		name string
		f    func(*Spec)
		want string
	}{
		{"kind", func(s *Spec) { s.Artifact.Kind = "x" }, "artifact.kind"},
		{"sha", func(s *Spec) { s.Artifact.SHA256 = "ab" }, "sha256"},
		{"canary", func(s *Spec) { s.Canary = -1 }, "canary"},
		{"no waves", func(s *Spec) { s.Waves = nil }, "at least one"},
		{"wave order", func(s *Spec) { s.Waves = []float64{50, 10} }, "does not increase"},
		{"wave range", func(s *Spec) { s.Waves = []float64{150} }, "not in"},
		{"timeout", func(s *Spec) { s.HealthWindow, s.JobTimeout = time.Hour, time.Minute }, "must exceed"},
		{"selector", func(s *Spec) { s.Selector = map[string]string{"a=b": "c"} }, "selector"},
		{"rate above 1", func(s *Spec) { s.MaxFailureRate = 1.5 }, "max_failure_rate 1.5 is not in [0, 1]"},
		{"rate negative", func(s *Spec) { s.MaxFailureRate = -0.1 }, "max_failure_rate -0.1"},
		{"rate NaN", func(s *Spec) { s.MaxFailureRate = math.NaN() }, "max_failure_rate NaN"},
		{"min executions", func(s *Spec) { s.MinExecutions = -1 }, "min_executions -1 is negative"},
	}
	for _, tc := range specs {
		s := valid
		s.Waves = append([]float64(nil), valid.Waves...)
		tc.f(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzParseSpecFlags(f *testing.F) {
	f.Add("site=a,line=3", "10%,50%,100%", "5%")
	f.Fuzz(func(t *testing.T, sel, waves, th string) {
		ParseSelector(sel)
		ParseWaves(waves)
		if x, err := ParseThreshold(th); err == nil && (x.Limit(1000) < 0 || x.Percent > 100) {
			t.Fatalf("ParseThreshold(%q) = %+v", th, x)
		}
		if x, err := ParseRate(th); err == nil && !(x >= 0 && x <= 1) {
			t.Fatalf("ParseRate(%q) = %v", th, x)
		}
	})
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalF(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalStates(a, b []State) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestJobIDsDifferAcrossDatabases: agents remember job ids; a new database
// (fleetd reinstalled) must not reuse those of the old one, while a reopened
// one keeps its epoch.
func TestJobIDsDifferAcrossDatabases(t *testing.T) {
	ctx := context.Background()
	var ids []string
	path := dbPath(t)
	for _, p := range []string{path, dbPath(t), path} {
		s := newSim(t, 1, "1")
		e := openEngine(t, p, s, newClock())
		sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Waves: []float64{100}})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := e.Get(sum.ID)
		if err := api.ValidateID(r.Jobs[0].JobID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.Jobs[0].JobID)
		e.Close()
	}
	epoch := func(id string) string { return strings.Split(id, "-")[1] }
	if !strings.HasPrefix(ids[0], "r1-") || !strings.HasPrefix(ids[1], "r1-") || !strings.HasPrefix(ids[2], "r2-") ||
		epoch(ids[0]) == epoch(ids[1]) || epoch(ids[0]) != epoch(ids[2]) {
		t.Fatalf("job ids %v: want r1 in two databases with different epochs, r2 with the first one's", ids)
	}
}
