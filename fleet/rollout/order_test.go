package rollout

import (
	"context"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"edgefleet/fleet/api"
)

// TestReportsOutOfOrder delivers one job's reports in an order other than
// the device sent them, as fleetd does when it handles a device's messages
// concurrently or two replicas each get one: a report of an earlier phase
// must not move the job back, and a final one always ends it.
func TestReportsOutOfOrder(t *testing.T) {
	final := &api.ShadowReport{Final: true, Frames: 40, Agreement: 0.97}
	periodic := &api.ShadowReport{Frames: 10, Agreement: 0.5}
	tests := []struct {
		name      string
		reports   []api.JobStatus
		want      string
		wantStale float64
		agreement float64 // of the job's shadow result, when there is one
	}{
		{name: "in order", want: api.JobHealthCheck,
			reports: []api.JobStatus{{State: api.JobDownloading}, {State: api.JobVerifying}, {State: api.JobInstalling}, {State: api.JobHealthCheck}}},
		{name: "downloading after health_check", want: api.JobHealthCheck, wantStale: 1,
			reports: []api.JobStatus{{State: api.JobHealthCheck}, {State: api.JobDownloading}}},
		{name: "every phase reversed", want: api.JobHealthCheck, wantStale: 4,
			reports: []api.JobStatus{{State: api.JobHealthCheck}, {State: api.JobInstalling}, {State: api.JobVerifying}, {State: api.JobDownloading}, {State: api.JobQueued}}},
		{name: "final before the phases", want: api.JobSucceeded,
			reports: []api.JobStatus{{State: api.JobSucceeded}, {State: api.JobHealthCheck}, {State: api.JobInstalling}}},
		{name: "final after a later phase", want: api.JobFailed,
			reports: []api.JobStatus{{State: api.JobHealthCheck}, {State: api.JobFailed, Reason: "unhealthy"}}},
		{name: "same phase again", want: api.JobDownloading,
			reports: []api.JobStatus{{State: api.JobDownloading, Progress: 0.2}, {State: api.JobDownloading, Progress: 0.6}}},
		{name: "periodic shadow report after the final one", want: api.JobShadow, wantStale: 1, agreement: 0.97,
			reports: []api.JobStatus{{State: api.JobShadow, Shadow: final}, {State: api.JobShadow, Shadow: periodic}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, id, job := heldJob(t)
			for _, st := range tc.reports {
				st.DeviceID, st.JobID = "cam-0000", job
				if err := e.HandleJobStatus(context.Background(), st); err != nil {
					t.Fatalf("report %s: %v", st.State, err)
				}
			}
			r, err := e.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			j := r.Jobs[0]
			if j.State != tc.want {
				t.Errorf("job state %s, want %s", j.State, tc.want)
			}
			if got := staleCount(t, e); got != tc.wantStale {
				t.Errorf("stale reports counted %v, want %v", got, tc.wantStale)
			}
			if tc.agreement != 0 && (j.Shadow == nil || j.Shadow.Agreement != tc.agreement || !j.Shadow.Final) {
				t.Errorf("shadow result %+v, want the final report's agreement %v", j.Shadow, tc.agreement)
			}
		})
	}
}

// TestConcurrentReportsEndAtLastPhase sends every phase of many jobs from
// concurrent goroutines, each phase of a job in its own, as fleetd's
// handlers may: every job must end at its last phase whatever the order.
func TestConcurrentReportsEndAtLastPhase(t *testing.T) {
	phases := []string{api.JobQueued, api.JobDownloading, api.JobVerifying, api.JobInstalling, api.JobHealthCheck}
	for round := range 50 {
		e, id, job := heldJob(t)
		var wg sync.WaitGroup
		for _, p := range phases {
			wg.Go(func() {
				if err := e.HandleJobStatus(context.Background(), api.JobStatus{DeviceID: "cam-0000", JobID: job, State: p}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		r, err := e.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Jobs[0].State; got != api.JobHealthCheck {
			t.Fatalf("round %d: job left in %s after its device reported %s", round, got, api.JobHealthCheck)
		}
	}
}

// heldJob starts a rollout to one device that answers only queued, and
// returns the engine, the rollout id and the job id.
func heldJob(t *testing.T) (*Engine, string, string) {
	t.Helper()
	s, c := newSim(t, 1, "1"), newClock()
	s.devices["cam-0000"].behave = behaveHold
	e := openEngine(t, dbPath(t), s, c)
	t.Cleanup(func() { e.Close() })
	sum, err := e.Create(context.Background(), Spec{Artifact: testArtifact("2"), Waves: []float64{100}, MaxFailures: Threshold{Count: 1},
		HealthWindow: time.Minute, JobTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r := stepUntil(t, e, 3, func(r *Rollout) bool { return r.Jobs[0].State == api.JobQueued }, sum.ID)
	return e, sum.ID, r.Jobs[0].JobID
}

func staleCount(t *testing.T, e *Engine) float64 {
	t.Helper()
	var m dto.Metric
	if err := e.m.stale.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
