package rollout

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

// storeSuite is the behaviour every Store shows. open returns a fresh,
// empty store and a function that closes it and opens it again on the same
// data (a restart).
func storeSuite(t *testing.T, open func(t *testing.T) (Store, func() Store)) {
	ctx := context.Background()
	mk := func(id string) *Rollout {
		yes := false
		now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
		return &Rollout{ID: id, State: StateWave, Wave: 1, CreatedAt: now, UpdatedAt: now, WaveEnd: []int{1, 2},
			Spec: Spec{Artifact: testArtifact("2"), Selector: map[string]string{"site": "a"}, Canary: 1, Waves: []float64{100},
				MaxFailureRate: 0.05, MinExecutions: 10, RollbackOnAbort: &yes, JobTimeout: time.Hour},
			Jobs: []Job{{DeviceID: "cam-1", JobID: id + "-x-0", State: "succeeded", SentAt: now},
				{DeviceID: "cam-2", JobID: id + "-x-1", Wave: 1, State: JobDispatched, Rollback: JobPending}},
			Transitions: []Transition{{At: now, To: "pending", Reason: "created", By: "alice"}}}
	}
	tests := []struct {
		name string
		f    func(t *testing.T, s Store, reopen func() Store) Store
	}{
		{"epoch kept across reopen", func(t *testing.T, s Store, reopen func() Store) Store {
			ep := s.Epoch()
			if len(ep) < 4 {
				t.Fatalf("epoch %q", ep)
			}
			if s = reopen(); s.Epoch() != ep {
				t.Fatalf("epoch %q after reopen, was %q", s.Epoch(), ep)
			}
			return s
		}},
		{"ids in sequence, never reused", func(t *testing.T, s Store, reopen func() Store) Store {
			var ids []string
			for i := range 3 {
				if i == 2 {
					s = reopen()
				}
				r, err := s.Create(ctx, func(id string) (*Rollout, error) { return mk(id), nil })
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, r.ID)
			}
			if !reflect.DeepEqual(ids, []string{"r1", "r2", "r3"}) {
				t.Fatalf("ids %v", ids)
			}
			return s
		}},
		{"failed fill stores nothing", func(t *testing.T, s Store, _ func() Store) Store {
			boom := errors.New("boom")
			if _, err := s.Create(ctx, func(string) (*Rollout, error) { return nil, boom }); !errors.Is(err, boom) {
				t.Fatalf("Create = %v, want fill's error", err)
			}
			if rs, err := s.Load(ctx); err != nil || len(rs) != 0 {
				t.Fatalf("Load = %d rollouts, %v", len(rs), err)
			}
			return s
		}},
		{"save and load round trip", func(t *testing.T, s Store, reopen func() Store) Store {
			r, err := s.Create(ctx, func(id string) (*Rollout, error) { return mk(id), nil })
			if err != nil {
				t.Fatal(err)
			}
			r.State, r.Reason = StateAborted, "wave 1 stopped"
			r.Jobs[1].State = "failed"
			r.Transitions = append(r.Transitions, Transition{At: r.CreatedAt.Add(time.Minute), From: "wave 1", To: "aborted", Reason: r.Reason, By: ActorEngine})
			other := mk("r77")
			if err := s.Save(ctx, r, other); err != nil {
				t.Fatal(err)
			}
			r.Reason = "changed after Save" // the store keeps no reference
			s = reopen()
			rs, err := s.Load(ctx)
			if err != nil || len(rs) != 2 {
				t.Fatalf("Load = %d rollouts, %v", len(rs), err)
			}
			got := map[string]*Rollout{rs[0].ID: rs[0], rs[1].ID: rs[1]}
			r.Reason = "wave 1 stopped"
			for _, want := range []*Rollout{r, other} {
				if !reflect.DeepEqual(got[want.ID], want) {
					t.Errorf("%s:\n got %+v\nwant %+v", want.ID, got[want.ID], want)
				}
			}
			return s
		}},
		{"shadow reports merge and survive a reopen", shadowRoundTrip},
		{"close twice", func(t *testing.T, s Store, _ func() Store) Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, reopen := open(t)
			s = tc.f(t, s, reopen)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

// shadowRoundTrip is storeSuite's case for SaveShadow and LoadShadow.
func shadowRoundTrip(t *testing.T, s Store, reopen func() Store) Store {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	latest := &api.ShadowReport{ElapsedS: 5, Frames: 40, Agreement: 0.9}
	final := &api.ShadowReport{Final: true, ElapsedS: 60, Frames: 400, Agreement: 0.8,
		Samples: []api.ShadowSample{{Camera: "cam0", JPEG: []byte{0xff, 0xd8, 0xff, 0xd9}}}}
	for _, rec := range []ShadowRecord{
		{RolloutID: "r1", DeviceID: "cam-1", JobID: "j1", Latest: latest, UpdatedAt: now},
		{RolloutID: "r1", DeviceID: "cam-2", JobID: "j2", Latest: latest, UpdatedAt: now},
		{RolloutID: "r10", DeviceID: "cam-1", JobID: "j3", Latest: latest, UpdatedAt: now},
	} {
		if err := s.SaveShadow(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveShadow(ctx, ShadowRecord{RolloutID: "r1", DeviceID: "cam-1", JobID: "j1", Final: final, UpdatedAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	recs, err := s.LoadShadow(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	sortShadow(recs)
	want := []ShadowRecord{{RolloutID: "r1", DeviceID: "cam-1", JobID: "j1", Latest: latest, Final: final, UpdatedAt: now.Add(time.Minute)},
		{RolloutID: "r1", DeviceID: "cam-2", JobID: "j2", Latest: latest, UpdatedAt: now}}
	if len(recs) != 2 || !reflect.DeepEqual(recs, want) {
		t.Fatalf("LoadShadow(r1):\n got %+v\nwant %+v", recs, want)
	}
	return s
}

func openBoltSuite(t *testing.T) (Store, func() Store) {
	path := dbPath(t)
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	cur := s
	return s, func() Store {
		if err := cur.Close(); err != nil {
			t.Fatal(err)
		}
		if cur, err = OpenBolt(path); err != nil {
			t.Fatal(err)
		}
		return cur
	}
}

func TestBoltStore(t *testing.T) { storeSuite(t, openBoltSuite) }

// TestMemStore: a Mem's data outlives Close, so reopening is going on with
// the same Mem.
func TestMemStore(t *testing.T) {
	storeSuite(t, func(*testing.T) (Store, func() Store) {
		m := NewMem()
		return m, func() Store { return m }
	})
}

// TestEngineOnMem runs a rollout to completion on a Mem store through New.
func TestEngineOnMem(t *testing.T) {
	ctx := context.Background()
	s, c := newSim(t, 30, "1"), newClock()
	m := NewMem()
	e, err := New(ctx, m, Options{Devices: s, Dispatcher: s, Now: c.Now, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.eng = e
	defer e.Close()
	sum, err := e.Create(ctx, Spec{Artifact: testArtifact("2"), Canary: 1, Waves: []float64{50, 100}})
	if err != nil {
		t.Fatal(err)
	}
	r := stepUntil(t, e, 10, func(r *Rollout) bool { return r.State.Final() }, sum.ID)
	rs, err := m.Load(ctx)
	if err != nil || len(rs) != 1 || rs[0].State != StateCompleted || len(rs[0].Transitions) != len(r.Transitions) {
		t.Fatalf("stored %+v, %v", rs, err)
	}
}

// TestBoltSchemaVersion: a file of another schema version is refused, and
// says which.
func TestBoltSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyVersion, []byte("9"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBolt(path); err == nil || err.Error() != `rollout: open: schema version "9", this build reads "1"` {
		t.Fatalf("OpenBolt = %v", err)
	}
}

// TestBoltReadsEarlierRecords: a rollout written before transitions and the
// per-wave limits existed loads; its phase comes from its state, it rolls
// back on abort (the default), and its history starts with what happens
// next.
func TestBoltReadsEarlierRecords(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	old := `{"id":"r1","spec":{"artifact":{"kind":"model","name":"yolo","version":"2","sha256":"` + testArtifact("2").SHA256 +
		`","size":100,"url":"/artifacts/x"},"canary":0,"waves":[100],"max_failures":{"count":1},"health_window":0,"job_timeout":3600000000000},` +
		`"state":"wave","wave":1,"created_at":"2026-11-25T12:00:00Z","updated_at":"2026-11-25T12:00:00Z","wave_end":[0,1],` +
		`"jobs":[{"device_id":"cam-0000","job_id":"r1-x-0","wave":1,"state":"succeeded","previous":"1"}]}`
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRollouts).Put([]byte("r1"), []byte(old)) })
	if err != nil {
		t.Fatal(err)
	}
	sim, c := newSim(t, 1, "2"), newClock()
	e, err := New(ctx, s, Options{Devices: sim, Dispatcher: sim, Now: c.Now, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r, err := e.Get("r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase() != "wave 1" || len(r.Transitions) != 0 || !r.Summarize().RollbackOnAbort {
		t.Fatalf("phase %s, %d transitions, summary %+v", r.Phase(), len(r.Transitions), r.Summarize())
	}
	if _, err := e.Abort("r1", "old"); err != nil {
		t.Fatal(err)
	}
	r, _ = e.Get("r1")
	checkSteps(t, r, []step{
		{"wave 1", "aborted", ActorOperator, "aborted by operator: old"},
		{"aborted", "rolling_back", ActorEngine, "1 device sent back"},
	})
}

// TestBoltSaveWithShadowAtomic: shadow reports and rollouts go in one
// transaction: one that fails on a report stores no rollout either, and
// one that succeeds stores both.
func TestBoltSaveWithShadowAtomic(t *testing.T) {
	ctx := context.Background()
	s, err := OpenBolt(dbPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	r := &Rollout{ID: "r1", State: StateCanary, CreatedAt: now, UpdatedAt: now, Spec: Spec{Artifact: testArtifact("2")},
		Jobs: []Job{{DeviceID: "cam-1", JobID: "r1-x-0", State: api.JobShadow}}}
	rep := ShadowRecord{RolloutID: "r1", DeviceID: "cam-1", JobID: "r1-x-0", UpdatedAt: now,
		Latest: &api.ShadowReport{Frames: 10, Agreement: 0.95}}
	// A stored report that does not decode makes the merge fail.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketShadow).Put([]byte(shadowKey("r1", "cam-1")), []byte("{bad"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveWithShadow(ctx, []ShadowRecord{rep}, r); err == nil {
		t.Fatal("SaveWithShadow succeeded over a bad stored report")
	}
	if rs, err := s.Load(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("after the failed save: %d rollouts stored (%v), want none", len(rs), err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketShadow).Delete([]byte(shadowKey("r1", "cam-1")))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveWithShadow(ctx, []ShadowRecord{rep}, r); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Load(ctx)
	if err != nil || len(rs) != 1 || rs[0].Jobs[0].State != api.JobShadow {
		t.Fatalf("Load: %v, %v", rs, err)
	}
	recs, err := s.LoadShadow(ctx, "r1")
	if err != nil || len(recs) != 1 || recs[0].Latest == nil || recs[0].Latest.Frames != 10 {
		t.Fatalf("LoadShadow: %+v, %v", recs, err)
	}
}
