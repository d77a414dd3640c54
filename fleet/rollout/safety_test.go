package rollout

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

// updateLog records which target indexes got an update command.
type updateLog struct {
	mu   sync.Mutex
	sent []int
}

func (u *updateLog) record(_ string, cmd api.Command) {
	u.mu.Lock()
	u.sent = append(u.sent, jobIndex(cmd.JobID))
	u.mu.Unlock()
}

func (u *updateLog) indexes() []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]int(nil), u.sent...)
}

type step struct{ from, to, by, reason string }

func steps(r *Rollout) []step {
	var out []step
	for _, tr := range r.Transitions {
		out = append(out, step{tr.From, tr.To, tr.By, tr.Reason})
	}
	return out
}

// checkSteps compares transitions; a wanted reason matches as a substring.
func checkSteps(t *testing.T, r *Rollout, want []step) {
	t.Helper()
	got := steps(r)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		w, g := want[i], got[i]
		ok = g.from == w.from && g.to == w.to && g.by == w.by && strings.Contains(g.reason, w.reason)
	}
	if !ok {
		t.Fatalf("transitions:\n%s\nwant:\n%s", fmtSteps(got), fmtSteps(want))
	}
}

func fmtSteps(ss []step) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString("  " + s.from + " -> " + s.to + " by " + s.by + ": " + s.reason + "\n")
	}
	return b.String()
}

// TestWaveFailureRate is issue 17's must-show: 1,000 devices, canary 2 and
// waves 10%, 50%, 100%, max-failure-rate 5%, a fixed 10% of the devices
// failing. Wave 1 stops at its 5th failure (5 > 5% of its 98 devices),
// before a single wave-2 job and before the rest of wave 1 is sent; the
// canaries, the wave-1 successes and the failed devices are all sent back;
// the history tells each step; an operator's later rollback keeps the
// abort's reason; and the history survives a restart.
func TestWaveFailureRate(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 1000, "1"), newClock()
	for i, id := range s.order {
		if i%10 == 5 {
			s.devices[id].behave = behaveFail
		}
	}
	path := dbPath(t)
	e := openEngine(t, path, s, c)
	sp := spec1000("5%")
	sp.MaxFailureRate = 0.05
	sum, err := e.CreateBy(ctx, sp, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !sum.RollbackOnAbort || sum.MaxFailureRate != 0.05 {
		t.Fatalf("summary %+v", sum)
	}
	var log updateLog
	s.onUpdate = log.record
	r := stepUntil(t, e, 10, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	const stopped = "wave 1 stopped: 5 of its 98 devices failed, more than max-failure-rate 0.05 allows (4.9)"
	if r.State != StateAborted || r.Reason != stopped {
		t.Fatalf("state %s: %q", r.State, r.Reason)
	}
	sent := log.indexes()
	if len(sent) != 46 || sent[len(sent)-1] != 45 {
		t.Fatalf("updates sent to %v, want targets 0..45 only", sent)
	}
	r = stepUntil(t, e, 5, func(r *Rollout) bool { return r.Phase() == phaseRolledBack }, sum.ID)
	for i, j := range r.Jobs {
		d := s.dev(j.DeviceID)
		switch {
		case i <= 45:
			if j.Rollback != api.JobSucceeded || d.version != "1" {
				t.Errorf("target %d (%s): rollback %q, version %s", i, j.State, j.Rollback, d.version)
			}
		default:
			if j.State != JobCancelled || j.Rollback != "" || d.updates != 0 || d.version != "1" {
				t.Errorf("target %d never sent: job %s, rollback %q, %d updates", i, j.State, j.Rollback, d.updates)
			}
		}
	}
	if _, err := e.Act(ctx, sum.ID, Action{Kind: ActionRollback, By: "bob"}); err != nil {
		t.Fatal(err)
	}
	r = stepUntil(t, e, 3, func(r *Rollout) bool { return len(r.Transitions) == 8 }, sum.ID)
	if r.State != StateRolledBack || r.Reason != stopped {
		t.Fatalf("after the operator's rollback: %s %q", r.State, r.Reason)
	}
	checkSteps(t, r, []step{
		{"", "pending", "alice", "created: 1000 targets, canary 2"},
		{"pending", "canary", ActorEngine, "started with 2 devices"},
		{"canary", "wave 1", ActorEngine, "canary ended: 2 succeeded, 0 failed; started with 98 devices"},
		{"wave 1", "aborted", ActorEngine, stopped},
		{"aborted", "rolling_back", ActorEngine, "rollback_on_abort: 46 devices sent back"},
		{"rolling_back", "rolled_back", ActorEngine, "46 devices back on their previous version, 0 rollbacks failed"},
		{"rolled_back", "rolling_back", "bob", "rolled back by operator"},
		{"rolling_back", "rolled_back", ActorEngine, "46 devices back"},
	})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openEngine(t, path, s, c)
	defer e.Close()
	again, err := e.Get(sum.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Transitions, r.Transitions) || again.Reason != stopped {
		t.Fatalf("after reopen:\n%s\nwant:\n%s", fmtSteps(steps(again)), fmtSteps(steps(r)))
	}
}

// TestRollbackOnAbortFalse: only the failed devices go back; the canaries
// and the successes stay on the new version, and no rollback phase is
// recorded.
func TestRollbackOnAbortFalse(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 1000, "1"), newClock()
	for i, id := range s.order {
		if i%10 == 5 {
			s.devices[id].behave = behaveFail
		}
	}
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sp := spec1000("5%")
	sp.MaxFailureRate = 0.05
	no := false
	sp.RollbackOnAbort = &no
	sum, err := e.Create(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	stepUntil(t, e, 10, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	r := stepUntil(t, e, 5, func(r *Rollout) bool { return r.Summarize().RolledBack == 5 }, sum.ID)
	for i, j := range r.Jobs[:46] {
		d := s.dev(j.DeviceID)
		failed := i%10 == 5
		if failed != (j.Rollback == api.JobSucceeded) || failed != (d.version == "1") {
			t.Errorf("target %d (%s): rollback %q, version %s", i, j.State, j.Rollback, d.version)
		}
	}
	if p := r.Phase(); p != "aborted" {
		t.Fatalf("phase %s, want aborted", p)
	}
}

// TestWaveLimits: the per-wave rules, each on a small fleet in one wave
// (or a canary) with the whole-rollout budget out of the way.
func TestWaveLimits(t *testing.T) {
	tests := []struct {
		name    string
		canary  int
		rate    float64
		min     int
		fail    []int
		want    State
		reason  string
		updates int // update commands sent
	}{
		{"min executions holds off one failure of one", 0, 0.2, 10, []int{0}, StateCompleted, "39 of 40 devices updated, 1 failed", 40},
		{"min executions 1 stops at one failure of one", 0, 0.2, 1, []int{0}, StateAborted, "wave 1 stopped: 1 of 1 ended jobs failed", 1},
		{"rate over min executions", 0, 0.2, 10, []int{0, 1, 2}, StateAborted, "wave 1 stopped: 3 of 10 ended jobs failed (40 devices in the wave)", 10},
		{"min 0: only the wave's size counts", 0, 0.2, 0, []int{0, 1, 2, 3, 4, 5, 6, 7}, StateCompleted, "32 of 40 devices updated, 8 failed", 40},
		{"certain to exceed", 0, 0.2, 0, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, StateAborted, "wave 1 stopped: 9 of its 40 devices failed", 9},
		{"canary is a wave", 2, 0.05, 0, []int{0}, StateAborted, "canary stopped: 1 of its 2 devices failed", 1},
		{"no rate, budget only", 0, 0, 1, []int{0, 1, 2}, StateCompleted, "37 of 40 devices updated, 3 failed", 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, c := newSim(t, 40, "1"), newClock()
			for _, i := range tc.fail {
				s.devices[s.order[i]].behave = behaveFail
			}
			e := openEngine(t, dbPath(t), s, c)
			defer e.Close()
			var log updateLog
			s.onUpdate = log.record
			no := false
			sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Canary: tc.canary, Waves: []float64{100}, MaxFailures: Threshold{Count: 100},
				MaxFailureRate: tc.rate, MinExecutions: tc.min, RollbackOnAbort: &no})
			if err != nil {
				t.Fatal(err)
			}
			r := stepUntil(t, e, 10, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
			if r.State != tc.want || !strings.Contains(r.Reason, tc.reason) {
				t.Fatalf("%s: %q, want %s: %q", r.State, r.Reason, tc.want, tc.reason)
			}
			if n := len(log.indexes()); n != tc.updates {
				t.Fatalf("%d updates sent, want %d", n, tc.updates)
			}
		})
	}
}

// TestOperatorAbortRollsBack: an operator's abort sends back every device
// the rollout updated; a job in flight at the abort gets its rollback when
// it ends, and only then is the rollback phase over.
func TestOperatorAbortRollsBack(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 20, "1"), newClock()
	held := s.order[5]
	s.devices[held].behave = behaveHold
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Canary: 2, Waves: []float64{100}, MaxFailures: Threshold{Count: 3}, JobTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	stepUntil(t, e, 5, func(r *Rollout) bool { return r.Summarize().Succeeded == 19 }, sum.ID)
	if _, err := e.Act(ctx, sum.ID, Action{Kind: ActionAbort, By: "carol", Reason: "bad build"}); err != nil {
		t.Fatal(err)
	}
	r := stepUntil(t, e, 3, func(r *Rollout) bool { return r.Summarize().RolledBack == 19 }, sum.ID)
	if r.Phase() != phaseRollingBack || r.Jobs[5].Rollback != "" {
		t.Fatalf("phase %s with a job in flight, its rollback %q", r.Phase(), r.Jobs[5].Rollback)
	}
	s.release(ctx, held, "2")
	r = stepUntil(t, e, 3, func(r *Rollout) bool { return r.Phase() == phaseRolledBack }, sum.ID)
	for _, id := range s.order {
		if v := s.dev(id).version; v != "1" {
			t.Errorf("%s on %s", id, v)
		}
	}
	if r.State != StateAborted || r.Reason != "aborted by operator: bad build" {
		t.Fatalf("%s %q", r.State, r.Reason)
	}
	checkSteps(t, r, []step{
		{"", "pending", ActorOperator, "created"},
		{"pending", "canary", ActorEngine, "started"},
		{"canary", "wave 1", ActorEngine, "started with 18 devices"},
		{"wave 1", "aborted", "carol", "aborted by operator: bad build"},
		{"aborted", "rolling_back", ActorEngine, "19 devices sent back"},
		{"rolling_back", "rolled_back", ActorEngine, "20 devices back on their previous version"},
	})
}

// TestErrorStrings: every error says "rollout:" first, then what failed.
func TestErrorStrings(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 3, "1"), newClock()
	e := openEngine(t, dbPath(t), s, c)
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Waves: []float64{100}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pause(sum.ID); err != nil {
		t.Fatal(err)
	}
	errOf := func(_ any, err error) error { return err }
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"get", func() error { return errOf(e.Get("r9")) }, "rollout: not found: get r9"},
		{"state", func() error { return errOf(e.Pause(sum.ID)) }, "rollout: not allowed in this state: pause r1, which is paused"},
		{"action", func() error { return errOf(e.Act(ctx, sum.ID, Action{Kind: "explode"})) }, `rollout: unknown action "explode"`},
		{"targets", func() error {
			return errOf(e.Create(ctx, Spec{Artifact: testArtifact("2"), Selector: map[string]string{"line": "9"}, Waves: []float64{100}}))
		}, `rollout: no device matches the selector "line=9"`},
		{"spec", func() error {
			return errOf(e.Create(ctx, Spec{Artifact: testArtifact("2"), Waves: []float64{100}, MaxFailureRate: 2}))
		}, "rollout: create: max_failure_rate 2 is not in [0, 1]"},
		{"job", func() error {
			return e.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-0000", JobID: "zz", State: api.JobFailed})
		}, "rollout: not found: job zz"},
		{"closed", func() error { e.Close(); return e.Step(ctx) }, "rollout: engine closed"},
	}
	for _, tc := range tests {
		if err := tc.err(); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
