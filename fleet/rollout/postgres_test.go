package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"edgefleet/fleet/api"
	"edgefleet/fleet/database"
	"edgefleet/fleet/database/dbtest"
	"edgefleet/internal/testutil"
)

func TestPostgresStore(t *testing.T) {
	storeSuite(t, func(t *testing.T) (Store, func() Store) {
		pool := dbtest.Open(t).Pool
		s, err := OpenPostgres(context.Background(), pool)
		if err != nil {
			t.Fatal(err)
		}
		return s, func() Store {
			s, err := OpenPostgres(context.Background(), pool)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// openReplicaPool opens the database at dsn as another fleetd would: a pool of its own.
func openReplicaPool(t *testing.T, dsn string) *pgxpool.Pool {
	db, err := database.Open(context.Background(), dsn, database.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db.Pool
}

type replica struct {
	c    *Cluster
	pool *pgxpool.Pool
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan struct{}
}

func startReplica(t *testing.T, dsn string, s *sim) *replica {
	r := &replica{pool: openReplicaPool(t, dsn), reg: prometheus.NewRegistry(), done: make(chan struct{})}
	var err error
	r.c, err = NewCluster(context.Background(), r.pool, Options{Devices: s, Dispatcher: s, Tick: 100 * time.Millisecond,
		Logger: quietLogger(), Registerer: r.reg}, ClusterOptions{LeasePoll: 500 * time.Millisecond, InboxPoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() {
		defer close(r.done)
		r.c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// kill stops a replica as kill -9 would, as far as the database sees:
// its connections are dropped, the lease with them.
func (r *replica) kill(t *testing.T) {
	if _, err := r.pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'fleetd-rollout-lease' AND pid IN
		(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND granted)`, leaseKey1, leaseKey2); err != nil {
		t.Fatal(err)
	}
	r.stop()
	<-r.done
	r.pool.Close()
}

func waitRollout(t *testing.T, c *Cluster, id string, what string, cond func(*Rollout) bool) *Rollout {
	t.Helper()
	var r *Rollout
	testutil.WaitFor(t, what, 30*time.Second, func() bool {
		var err error
		r, err = c.Get(id)
		return err == nil && cond(r)
	})
	return r
}

// TestClusterFailover: two replicas on one database. The one that starts
// first takes the lease; a rollout created and paused and resumed through
// the other (standby) takes effect, its devices report through the
// standby, and each report is applied once. The holder is killed with its
// canary job in flight: the standby takes over within 15 s, sends the job
// again and completes the rollout.
func TestClusterFailover(t *testing.T) {
	dsn := dbtest.DSN(t)
	s := newSim(t, 6, "1")
	s.set("cam-0000", func(d *simDevice) { d.behave = behaveHold })
	a := startReplica(t, dsn, s)
	testutil.WaitFor(t, "first replica holds the lease", 10*time.Second, a.c.Leader)
	b := startReplica(t, dsn, s)
	if g := gauge(t, a.reg, "edgefleet_rollout_lease_held") + 2*gauge(t, b.reg, "edgefleet_rollout_lease_held"); g != 1 {
		t.Fatalf("lease_held gauges: %v, want 1 on the first replica only", g)
	}
	s.mu.Lock()
	s.eng = b.c // devices report to the standby
	s.mu.Unlock()
	ctx := context.Background()

	sum, err := b.c.Create(ctx, Spec{Artifact: testArtifact("2"), Canary: 1, Waves: []float64{100}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.Pause(sum.ID); err != nil {
		t.Fatalf("pause through the standby: %v", err)
	}
	if r, _ := a.c.Get(sum.ID); r.State != StatePaused {
		t.Fatalf("after pause on the standby: %s", r.State)
	}
	if _, err := b.c.Pause(sum.ID); err == nil || !errorsIsState(err) {
		t.Fatalf("second pause through the standby = %v, want ErrState", err)
	}
	if _, err := b.c.Resume(sum.ID); err != nil {
		t.Fatal(err)
	}
	waitRollout(t, b.c, sum.ID, "canary job queued on its device", func(r *Rollout) bool { return r.Jobs[0].State == api.JobQueued })
	// The same report through both replicas: one row, applied once.
	job := api.JobStatus{DeviceID: "cam-0000", JobID: sum.ID + "-" + b.c.store.Epoch() + "-0", State: api.JobQueued}
	for _, c := range []*Cluster{a.c, b.c, a.c} {
		if err := c.HandleJobStatus(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	var rows int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM rollout_reports WHERE job_id = $1 AND state = 'queued'`, job.JobID).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d report rows, %v", rows, err)
	}

	killed := time.Now()
	a.kill(t)
	testutil.WaitFor(t, "standby takes the lease", 15*time.Second, b.c.Leader)
	t.Logf("standby took over %v after the kill", time.Since(killed).Round(time.Millisecond))
	s.release(ctx, "cam-0000", "2")
	r := waitRollout(t, b.c, sum.ID, "rollout completes", func(r *Rollout) bool { return r.State.Final() })
	if r.State != StateCompleted || r.Summarize().Succeeded != 6 {
		t.Fatalf("rollout %s: %+v", r.State, r.Summarize())
	}
	// Each job's success was counted once, by the new holder: 5 before
	// the kill were counted by the old one.
	got := counted(t, b.c, api.JobSucceeded) + counted(t, a.c, api.JobSucceeded)
	if got != 6 {
		t.Fatalf("%v successes counted, want 6", got)
	}
	for _, d := range s.order {
		if v := s.dev(d).version; v != "2" {
			t.Fatalf("%s on %s", d, v)
		}
	}
}

func errorsIsState(err error) bool { return errors.Is(err, ErrState) }

// counted reads a replica's count of jobs finished in state.
func counted(t *testing.T, c *Cluster, state string) float64 {
	var m dto.Metric
	if err := c.opt.metrics.finished.WithLabelValues(state).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestClusterStandbyAlone: while another session holds the lease and no
// engine runs, a replica still creates, lists and guards artifacts from the
// database; an operator action waits ActionTimeout, fails with
// ErrNotLeader and is withdrawn, so it does not take effect later. Once
// the lease is free the replica takes it and runs the rollout.
func TestClusterStandbyAlone(t *testing.T) {
	dsn := dbtest.DSN(t)
	pool := openReplicaPool(t, dsn)
	ctx := context.Background()
	holder, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, leaseKey1, leaseKey2); err != nil {
		t.Fatal(err)
	}
	s := newSim(t, 3, "1")
	r := startReplica(t, dsn, s)
	r.c.copt.ActionTimeout = 300 * time.Millisecond
	s.mu.Lock()
	s.eng = r.c
	s.mu.Unlock()
	art := testArtifact("2")
	sum, err := r.c.Create(ctx, Spec{Artifact: art, Canary: 1, Waves: []float64{100}})
	if err != nil {
		t.Fatal(err)
	}
	if l := r.c.List(); len(l) != 1 || l[0].ID != sum.ID || l[0].State != StatePending || l[0].Targets != 3 {
		t.Fatalf("List = %+v", l)
	}
	if ids := r.c.ArtifactInUse(art.SHA256); len(ids) != 1 || ids[0] != sum.ID {
		t.Fatalf("ArtifactInUse = %v", ids)
	}
	if _, err := r.c.Pause(sum.ID); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Pause without an engine = %v", err)
	}
	if r.c.Leader() {
		t.Fatal("leads while another session holds the lease")
	}
	holder.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, leaseKey1, leaseKey2)
	holder.Release()
	testutil.WaitFor(t, "replica takes the free lease", 15*time.Second, r.c.Leader)
	got := waitRollout(t, r.c, sum.ID, "rollout completes", func(r *Rollout) bool { return r.State.Final() })
	if got.State != StateCompleted {
		t.Fatalf("rollout %s (the withdrawn pause must not apply): %s", got.State, got.Reason)
	}
	if ids := r.c.ArtifactInUse(art.SHA256); len(ids) != 0 {
		t.Fatalf("ArtifactInUse after completion = %v", ids)
	}
	if _, err := r.c.Get("r99"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get r99 = %v", err)
	}
}

// TestClusterReacquires: a lone replica whose database connections are all
// dropped (a database restart, as far as it can tell) takes the lease
// again by itself and runs a rollout created after.
func TestClusterReacquires(t *testing.T) {
	dsn := dbtest.DSN(t)
	s := newSim(t, 3, "1")
	r := startReplica(t, dsn, s)
	s.mu.Lock()
	s.eng = r.c
	s.mu.Unlock()
	testutil.WaitFor(t, "replica leads", 10*time.Second, r.c.Leader)
	first := r.c.engine()
	ctl := openReplicaPool(t, dsn)
	if _, err := ctl.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "replica leads again, with a new engine", 15*time.Second, func() bool {
		e := r.c.engine()
		return e != nil && e != first
	})
	var sum Summary
	testutil.WaitFor(t, "create succeeds", 10*time.Second, func() bool {
		var err error
		sum, err = r.c.Create(context.Background(), Spec{Artifact: testArtifact("2"), Canary: 1, Waves: []float64{100}})
		return err == nil
	})
	if got := waitRollout(t, r.c, sum.ID, "rollout completes", func(r *Rollout) bool { return r.State.Final() }); got.State != StateCompleted {
		t.Fatalf("rollout %s: %s", got.State, got.Reason)
	}
}

// gauge reads a gauge from a registry.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestClusterShadow: devices report through the standby. One fails its
// shadow phase; the periodic reports (same state, applied more than once)
// and the final one reach the holder and the store; an accept through the
// standby sends the device its job again without Shadow.
func TestClusterShadow(t *testing.T) {
	dsn := dbtest.DSN(t)
	s := newSim(t, 4, "1")
	s.agreement["cam-0001"] = 0.5
	s.set("cam-0003", func(d *simDevice) { d.behave = behaveHold })
	a := startReplica(t, dsn, s)
	testutil.WaitFor(t, "first replica holds the lease", 10*time.Second, a.c.Leader)
	b := startReplica(t, dsn, s)
	s.mu.Lock()
	s.eng = b.c
	s.mu.Unlock()
	ctx := context.Background()
	sp := shadowSpec("1")
	sp.Canary, sp.Waves = 1, []float64{100}
	sum, err := b.c.Create(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	r := waitRollout(t, b.c, sum.ID, "cam-0001 fails its shadow phase, cam-0002 passes", func(r *Rollout) bool {
		return r.Jobs[1].State == api.JobFailed && r.Jobs[2].State == api.JobSucceeded
	})
	if !strings.Contains(r.Jobs[1].Reason, "agreement 0.500") || r.State.Final() {
		t.Fatalf("rollout %s, job %+v", r.State, r.Jobs[1])
	}
	recs, err := b.c.Shadow(ctx, sum.ID)
	if err == nil && (recs[0].Latest == nil || recs[0].Final == nil) {
		t.Fatalf("cam-0000: periodic %v, final %v: both should be kept", recs[0].Latest, recs[0].Final)
	}
	if err != nil || len(recs) != 3 || recs[1].DeviceID != "cam-0001" || recs[1].Final == nil || len(recs[1].Final.Samples) != 1 {
		t.Fatalf("Shadow = %+v, %v", recs, err)
	}
	// A second periodic report after the first was applied is applied too.
	for _, frames := range []int{1, 7} {
		late := api.JobStatus{DeviceID: "cam-0003", JobID: r.Jobs[3].JobID, State: api.JobShadow,
			Shadow: &api.ShadowReport{Frames: frames, Agreement: 0.99}}
		if err := b.c.HandleJobStatus(ctx, late); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, fmt.Sprintf("periodic report of %d frames stored", frames), 10*time.Second, func() bool {
			recs, err := b.c.Shadow(ctx, sum.ID)
			return err == nil && len(recs) == 4 && recs[3].Latest != nil && recs[3].Latest.Frames == frames
		})
	}
	got, err := b.c.Act(ctx, sum.ID, Action{Kind: ActionAccept, Device: "cam-0001", By: "bob"})
	if err != nil || got.Failed != 0 {
		t.Fatalf("accept through the standby: %+v, %v", got, err)
	}
	s.release(ctx, "cam-0003", "2")
	r = waitRollout(t, b.c, sum.ID, "rollout completes", func(r *Rollout) bool { return r.State.Final() })
	if r.State != StateCompleted || r.Summarize().Succeeded != 4 || r.Jobs[1].Shadow.AcceptedBy != "bob" {
		t.Fatalf("rollout %s: %+v", r.State, r.Summarize())
	}
}
