package rollout

import (
	"context"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/database/dbtest"
	"edgefleet/internal/testutil"
)

// TestClusterLateCommittedReport: a report whose row number was taken
// before another's but which committed after it (two replicas, or two
// handlers of one, inserting at once) is still applied by the holder.
func TestClusterLateCommittedReport(t *testing.T) {
	dsn := dbtest.DSN(t)
	s := newSim(t, 1, "1")
	s.set("cam-0000", func(d *simDevice) { d.behave = behaveHold })
	a := startReplica(t, dsn, s)
	testutil.WaitFor(t, "the replica holds the lease", 10*time.Second, a.c.Leader)
	s.mu.Lock()
	s.eng = a.c
	s.mu.Unlock()
	ctx := context.Background()
	sum, err := a.c.Create(ctx, Spec{Artifact: testArtifact("2"), Waves: []float64{100}})
	if err != nil {
		t.Fatal(err)
	}
	r := waitRollout(t, a.c, sum.ID, "job queued", func(r *Rollout) bool { return r.Jobs[0].State == api.JobQueued })
	job := r.Jobs[0].JobID

	// The final report takes its row number first and commits last.
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO rollout_reports (job_id, state, device_id) VALUES ($1, $2, $3)`,
		job, api.JobSucceeded, "cam-0000"); err != nil {
		t.Fatal(err)
	}
	if err := a.c.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-0000", JobID: job, State: api.JobHealthCheck}); err != nil {
		t.Fatal(err)
	}
	waitRollout(t, a.c, sum.ID, "health_check applied", func(r *Rollout) bool { return r.Jobs[0].State == api.JobHealthCheck })
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitRollout(t, a.c, sum.ID, "the late-committed final report applied", func(r *Rollout) bool { return r.State == StateCompleted })
}
