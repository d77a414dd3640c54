package rollout

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

const crashEnv = "EDGEFLEET_ROLLOUT_CRASH_DB"

// TestCrashMidRollout kills (SIGKILL) a process in the middle of a rollout,
// with a job report not yet written, and resumes the rollout from the
// database it left: jobs that had ended are not sent again, the job whose
// report was lost is sent again, and the rollout completes.
func TestCrashMidRollout(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(t, path)
		return
	}
	path := filepath.Join(t.TempDir(), "rollouts.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMidRollout$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v\n%s", err, out)
	}

	s, c := newSim(t, 100, "1"), newClock() // a fresh fleet view: nothing answered before the crash is known to it
	e := openEngine(t, path, s, c)
	defer e.Close()
	r, err := e.Get("r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateWave || r.Wave != 2 {
		t.Fatalf("after the crash: state %s wave %d", r.State, r.Wave)
	}
	var before []int // jobs that had ended
	for i, j := range r.Jobs {
		if jobFinal(j.State) {
			before = append(before, i)
		}
	}
	if r.Jobs[20].State != api.JobQueued {
		t.Fatalf("job 20: %s; its unwritten success should be lost", r.Jobs[20].State)
	}
	r = stepUntil(t, e, 10, func(r *Rollout) bool { return r.State.Final() }, "r1")
	if r.State != StateCompleted {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	for _, i := range before {
		if d := s.dev(r.Jobs[i].DeviceID); d.updates != 0 {
			t.Errorf("job %d had ended before the crash but was sent again", i)
		}
	}
	if s.dev(r.Jobs[20].DeviceID).updates != 1 || s.dev(r.Jobs[21].DeviceID).updates != 1 {
		t.Error("jobs in flight at the crash were not sent again")
	}
}

func crashChild(t *testing.T, path string) {
	ctx := context.Background()
	s, c := newSim(t, 100, "1"), newClock()
	for _, i := range []int{20, 21} { // wave 2 starts at index 10
		s.devices[s.order[i]].behave = behaveHold
	}
	e := openEngine(t, path, s, c)
	if _, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Canary: 2, Waves: []float64{10, 50, 100}, JobTimeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	stepUntil(t, e, 10, func(r *Rollout) bool { return r.State == StateWave && r.Wave == 2 }, "r1")
	e.Step(ctx) // writes the held jobs' queued state
	// A report the engine takes but has not written when the process dies.
	r, _ := e.Get("r1")
	if err := e.HandleJobStatus(ctx, api.JobStatus{DeviceID: s.order[20], JobID: r.Jobs[20].JobID, State: api.JobSucceeded}); err != nil {
		t.Fatal(err)
	}
	if r, _ = e.Get("r1"); !strings.HasPrefix(r.Jobs[20].State, "succ") {
		t.Fatal("report not taken")
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	time.Sleep(time.Minute)
}
