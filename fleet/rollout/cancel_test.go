package rollout

import (
	"context"
	dto "github.com/prometheus/client_model/go"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestStopCancelsUnsentJobs: when a rollout stops (a gate abort, an
// operator abort or a rollback), the jobs it had not sent end cancelled,
// with the reason, instead of staying pending for ever; the counts stay
// right (cancelled is neither a success nor a failure), and the history
// says "nothing to roll back" rather than "0 devices sent back".
func TestStopCancelsUnsentJobs(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(s *sim)
		act     func(e *Engine, id string) error
		state   State
		reason  string // in the rollout's and the cancelled jobs' reason
		wantOK  int    // succeeded
		wantBad int    // failed
		history string // the last transition's reason contains it
		phase   string
	}{
		{"operator abort, nothing sent", func(s *sim) {
			for _, d := range s.devices {
				d.online = false
			}
		}, func(e *Engine, id string) error { _, err := e.Abort(id, "wrong model"); return err },
			StateAborted, "aborted by operator: wrong model", 0, 0, "rollback_on_abort: nothing to roll back", "aborted"},
		{"canary gate", func(s *sim) {
			for _, d := range s.devices {
				d.behave = behaveSelfRollback
			}
		}, nil, StateAborted, "canary stopped", 0, 2, "rollback_on_abort: nothing to roll back", "aborted"},
		{"operator rollback after the canary", func(s *sim) {
			for _, id := range s.order[2:] {
				s.devices[id].online = false
			}
		}, func(e *Engine, id string) error { _, err := e.Rollback(id); return err },
			StateRolledBack, "rolled back by operator", 2, 0, "2 devices back on their previous version, 0 rollbacks failed", "rolled_back"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, c := newSim(t, 10, "1"), newClock()
			tt.prepare(s)
			e := openEngine(t, dbPath(t), s, c)
			defer e.Close()
			sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Canary: 2, Waves: []float64{100}, MaxFailures: Threshold{Count: 5}, MaxFailureRate: 0.5, JobTimeout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			stepUntil(t, e, 3, func(r *Rollout) bool { return r.State != StatePending }, sum.ID)
			if tt.act != nil {
				if err := tt.act(e, sum.ID); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				if err := e.Step(ctx); err != nil {
					t.Fatal(err)
				}
			}
			r, _ := e.Get(sum.ID)
			if r.State != tt.state || !strings.Contains(r.Reason, tt.reason) {
				t.Fatalf("state %s %q, want %s %q", r.State, r.Reason, tt.state, tt.reason)
			}
			cancelled := 0
			for _, j := range r.Jobs {
				if j.State == JobPending {
					t.Errorf("%s still pending after the rollout stopped", j.DeviceID)
				}
				if j.State == JobCancelled {
					cancelled++
					if !strings.HasPrefix(j.Reason, "not sent") || !strings.Contains(j.Reason, tt.reason) || !j.SentAt.IsZero() {
						t.Errorf("%s cancelled: reason %q, sent at %v", j.DeviceID, j.Reason, j.SentAt)
					}
				}
			}
			var m dto.Metric
			if err := e.m.finished.WithLabelValues(JobCancelled).Write(&m); err != nil || int(m.GetCounter().GetValue()) != cancelled {
				t.Errorf("edgefleet_rollout_jobs_finished_total{state=cancelled} = %v, want %d (%v)", m.GetCounter().GetValue(), cancelled, err)
			}
			sm := r.Summarize()
			if sm.Targets != 10 || sm.Succeeded != tt.wantOK || sm.Failed != tt.wantBad || sm.Cancelled != 10-tt.wantOK-tt.wantBad || cancelled != sm.Cancelled {
				t.Errorf("summary: %d targets, %d succeeded, %d failed, %d cancelled (%d jobs); want 10, %d, %d, %d",
					sm.Targets, sm.Succeeded, sm.Failed, sm.Cancelled, cancelled, tt.wantOK, tt.wantBad, 10-tt.wantOK-tt.wantBad)
			}
			for _, p := range sm.Progress {
				if p.Pending != 0 || p.InFlight != 0 {
					t.Errorf("wave %d: %d pending, %d in flight", p.Wave, p.Pending, p.InFlight)
				}
			}
			last := r.Transitions[len(r.Transitions)-1]
			if !strings.Contains(last.Reason, tt.history) || r.Phase() != tt.phase {
				t.Errorf("history ends %s -> %s %q, want phase %s and %q", last.From, last.To, last.Reason, tt.phase, tt.history)
			}
			for _, tr := range r.Transitions {
				if strings.Contains(tr.Reason, " 0 devices") || strings.HasPrefix(tr.Reason, "0 devices") {
					t.Errorf("history says %q", tr.Reason)
				}
			}
		})
	}
}

// TestRollbackOnAbortNote: the history entry an abort under
// rollback_on_abort writes names what is actually sent back.
func TestRollbackOnAbortNote(t *testing.T) {
	tests := []struct {
		n, inFlight int
		to, want    string
	}{
		{0, 0, "aborted", "rollback_on_abort: nothing to roll back: no device had been updated"},
		{0, 3, "rolling_back", "rollback_on_abort: nothing to roll back yet; 3 jobs still in flight will get a rollback when it ends, if it needs one"},
		{1, 0, "rolling_back", "rollback_on_abort: 1 device sent back"},
		{46, 1, "rolling_back", "rollback_on_abort: 46 devices sent back; 1 job still in flight will get a rollback when it ends, if it needs one"},
	}
	for _, tt := range tests {
		to, why := rollbackOnAbortNote(tt.n, tt.inFlight)
		if to != tt.to || why != tt.want {
			t.Errorf("rollbackOnAbortNote(%d, %d) = %s %q, want %s %q", tt.n, tt.inFlight, to, why, tt.to, tt.want)
		}
	}
}

// TestAbortBetweenCollectAndDispatch: a job collected for sending when an
// operator aborts before it leaves is not sent, and ends cancelled rather
// than pending.
func TestAbortBetweenCollectAndDispatch(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 4, "1"), newClock()
	e := openEngine(t, dbPath(t), s, c)
	defer e.Close()
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Waves: []float64{100}, JobTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range s.order {
		s.devices[id].online = false
	}
	stepUntil(t, e, 3, func(r *Rollout) bool { return r.State == StateWave }, sum.ID)
	e.mu.Lock()
	sends := e.collectLocked(e.rollouts[sum.ID], map[string]bool{"cam-0000": true}, c.Now(), nil)
	e.mu.Unlock()
	if len(sends) != 1 {
		t.Fatalf("collected %d sends, want 1", len(sends))
	}
	if _, err := e.Abort(sum.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	if errs := e.dispatch(ctx, sends, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	r, _ := e.Get(sum.ID)
	if j := r.Jobs[0]; j.State != JobCancelled || s.dev("cam-0000").updates != 0 || !strings.Contains(j.Reason, "aborted by operator: stop") {
		t.Fatalf("job %s %q, %d updates", j.State, j.Reason, s.dev("cam-0000").updates)
	}
}

// TestOpenCancelsUnsentJobsOfStoppedRollouts: a rollout stored aborted
// with pending jobs (before stopped rollouts cancelled them) gets them
// cancelled when the engine opens, and written back.
func TestOpenCancelsUnsentJobsOfStoppedRollouts(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	old := `{"id":"r1","spec":{"artifact":{"kind":"model","name":"yolo","version":"2","sha256":"` + testArtifact("2").SHA256 +
		`","size":100,"url":"/artifacts/x"},"canary":0,"waves":[100],"max_failures":{"count":1},"health_window":0,"job_timeout":3600000000000},` +
		`"state":"aborted","reason":"aborted by operator: old","wave":1,"created_at":"2026-11-25T12:00:00Z","updated_at":"2026-11-25T12:00:00Z","wave_end":[0,2],` +
		`"jobs":[{"device_id":"cam-0000","job_id":"r1-x-0","wave":1,"state":"succeeded","previous":"1"},` +
		`{"device_id":"cam-0001","job_id":"r1-x-1","wave":1,"state":"pending","previous":"1"}]}`
	err = s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketRollouts).Put([]byte("r1"), []byte(old)) })
	if err != nil {
		t.Fatal(err)
	}
	sim, c := newSim(t, 2, "2"), newClock()
	e, err := New(ctx, s, Options{Devices: sim, Dispatcher: sim, Now: c.Now, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Step(ctx); err != nil {
		t.Fatal(err)
	}
	e.Close()
	if s, err = OpenBolt(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, err := s.Load(ctx)
	if err != nil || len(rs) != 1 {
		t.Fatalf("Load: %d rollouts, %v", len(rs), err)
	}
	if j := rs[0].Jobs[1]; j.State != JobCancelled || !strings.Contains(j.Reason, "aborted by operator: old") || rs[0].Jobs[0].State != "succeeded" {
		t.Fatalf("stored jobs %+v", rs[0].Jobs)
	}
}
