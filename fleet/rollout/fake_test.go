package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Device behaviours in the simulated fleet.
const (
	behaveOK           = ""
	behaveFail         = "fail"          // installs, fails its health window, stays broken until told to roll back
	behaveSelfRollback = "self_rollback" // fails and goes back by itself
	behaveSilent       = "silent"        // never answers an update (answers rollbacks)
	behaveHold         = "hold"          // answers queued, then nothing until released
	behaveLoseReports  = "lose_reports"  // installs and succeeds, but its reports after queued are lost in flight
)

type simDevice struct {
	id       string
	labels   map[string]string
	online   bool
	version  string
	previous string
	behave   string
	seen     map[string]string // job id -> last state reported
	updates  int               // update commands received (first time per job id)
}

// sim is an in-process fleet of devices that answer jobs through the
// engine's HandleJobStatus, synchronously from Dispatch.
type sim struct {
	t  testing.TB
	mu sync.Mutex
	// eng is swapped on restart.
	eng interface {
		HandleJobStatus(context.Context, api.JobStatus) error
	}
	devices map[string]*simDevice
	order   []string
	// onUpdate, if set, is called (unlocked) for every first update command.
	onUpdate     func(dev string, cmd api.Command)
	failDispatch map[string]bool
	// agreement is each device's shadow agreement (default 0.95; noFrames:
	// the phase compared no frame); a command with Shadow gets a periodic
	// and a final report.
	agreement map[string]float64
}

func newSim(t testing.TB, n int, version string) *sim {
	s := &sim{t: t, devices: map[string]*simDevice{}, failDispatch: map[string]bool{}, agreement: map[string]float64{}}
	for i := range n {
		id := fmt.Sprintf("cam-%04d", i)
		s.devices[id] = &simDevice{id: id, online: true, version: version, seen: map[string]string{},
			labels: map[string]string{"site": "plant-a", "line": strconv.Itoa(i % 3)}}
		s.order = append(s.order, id)
	}
	return s
}

func (s *sim) dev(id string) *simDevice {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devices[id]
}

func (s *sim) set(id string, f func(d *simDevice)) {
	s.mu.Lock()
	f(s.devices[id])
	s.mu.Unlock()
}

func (s *sim) Select(_ context.Context, sel map[string]string) ([]Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Device
	for _, id := range s.order {
		d := s.devices[id]
		ok := true
		for k, v := range sel {
			ok = ok && d.labels[k] == v
		}
		if ok {
			out = append(out, Device{ID: id, Online: d.online, Model: "yolo", ModelVersion: d.version})
		}
	}
	return out, nil
}

func (s *sim) Dispatch(ctx context.Context, dev string, cmd api.Command) error {
	if err := cmd.Validate(); err != nil {
		s.t.Errorf("invalid command to %s: %v", dev, err)
		return err
	}
	s.mu.Lock()
	d := s.devices[dev]
	if s.failDispatch[dev] {
		s.mu.Unlock()
		return errors.New("broker unavailable")
	}
	if !d.online {
		s.mu.Unlock()
		s.t.Errorf("command %s sent to offline device %s", cmd.JobID, dev)
		return errors.New("offline")
	}
	eng := s.eng
	var reports []string
	var shadow []*api.ShadowReport // sent with the reports in state shadow, and the last with the final one
	if last, ok := d.seen[cmd.JobID]; ok {
		// Idempotent: a job seen before is not run again, its state is reported again.
		reports = []string{last}
	} else {
		switch cmd.Kind {
		case api.CommandRollback:
			d.version = d.previous
			reports = []string{api.JobQueued, api.JobInstalling, api.JobSucceeded}
		default:
			d.updates++
			pass := true
			if cmd.Shadow != nil {
				shadow, pass = s.shadowReports(dev, cmd.Shadow)
			}
			if !pass { // the serving model stays
				reports = []string{api.JobQueued, api.JobDownloading, api.JobShadow, api.JobFailed}
				break
			}
			switch d.behave {
			case behaveOK:
				d.previous, d.version = d.version, cmd.Artifact.Version
				reports = []string{api.JobQueued, api.JobDownloading, api.JobVerifying, api.JobInstalling, api.JobHealthCheck, api.JobSucceeded}
				if shadow != nil {
					reports = []string{api.JobQueued, api.JobDownloading, api.JobVerifying, api.JobShadow, api.JobShadow, api.JobInstalling, api.JobHealthCheck, api.JobSucceeded}
				}
			case behaveFail:
				d.previous, d.version = d.version, cmd.Artifact.Version
				reports = []string{api.JobQueued, api.JobDownloading, api.JobInstalling, api.JobFailed}
			case behaveSelfRollback:
				d.previous = d.version
				reports = []string{api.JobQueued, api.JobInstalling, api.JobHealthCheck, api.JobRolledBack}
			case behaveSilent:
				d.previous = d.version
			case behaveHold, behaveLoseReports:
				d.previous = d.version
				reports = []string{api.JobQueued}
			}
		}
		switch {
		case d.behave == behaveLoseReports && cmd.Kind != api.CommandRollback:
			d.version = cmd.Artifact.Version
			d.seen[cmd.JobID] = api.JobSucceeded
		case len(reports) > 0:
			d.seen[cmd.JobID] = reports[len(reports)-1]
		default:
			d.seen[cmd.JobID] = ""
		}
	}
	onUpdate := s.onUpdate
	s.mu.Unlock()
	if cmd.Kind != api.CommandRollback && onUpdate != nil {
		onUpdate(dev, cmd)
	}
	for _, st := range reports {
		if st == "" {
			continue
		}
		js := api.JobStatus{DeviceID: dev, JobID: cmd.JobID, State: st, Time: 1}
		if st == api.JobFailed || st == api.JobRolledBack {
			js.Reason = "health window: detection rate collapsed"
		}
		if st == api.JobShadow && len(shadow) > 0 {
			js.Shadow, shadow = shadow[0], shadow[1:]
		}
		if st == api.JobFailed && len(shadow) > 0 {
			js.Shadow, js.Reason = shadow[0], "shadow: agreement below min"
		}
		if err := eng.HandleJobStatus(ctx, js); err != nil {
			s.t.Errorf("HandleJobStatus(%+v): %v", js, err)
		}
	}
	return nil
}

// shadowReports returns the device's periodic and final shadow reports for
// spec, and whether they pass it.
func (s *sim) shadowReports(dev string, spec *api.ShadowSpec) ([]*api.ShadowReport, bool) {
	a, ok := s.agreement[dev]
	if !ok {
		a = 0.95
	}
	if a == noFrames {
		// As edge-agent reports a phase whose CPU budget left every frame
		// uncompared: no boxes either side, so precision, recall and F1 are 1.
		none := api.ShadowStats{Precision: 1, Recall: 1, F1: 1}
		return []*api.ShadowReport{{ElapsedS: spec.DurationS / 2, Skipped: 20, Agreement: 1, MinAgreement: spec.MinAgreement, ShadowStats: none},
			{Final: true, ElapsedS: spec.DurationS, Skipped: 40, Agreement: 1, MinAgreement: spec.MinAgreement, ShadowStats: none}}, false
	}
	stats := api.ShadowStats{Serving: 100, Candidate: 100, Matched: int(a * 100), Precision: a, Recall: a, F1: a, CountRatio: 1}
	periodic := &api.ShadowReport{ElapsedS: spec.DurationS / 2, Frames: 50, Agreement: a, MinAgreement: spec.MinAgreement, ShadowStats: stats}
	final := &api.ShadowReport{Final: true, ElapsedS: spec.DurationS, Frames: 100, Agreement: a, MinAgreement: spec.MinAgreement,
		ShadowStats: stats, Samples: []api.ShadowSample{{Camera: "cam0", TimeUs: 1, Disagreement: 1 - a, JPEG: []byte{0xff, 0xd8, 0xff, 0xd9}}}}
	return []*api.ShadowReport{periodic, final}, a >= spec.MinAgreement
}

// noFrames as a sim device's agreement: its shadow phase compares no frame.
const noFrames = -1.0

// release finishes a held device's job with success.
func (s *sim) release(ctx context.Context, dev, version string) {
	s.mu.Lock()
	d := s.devices[dev]
	var job string
	for j, st := range d.seen {
		if st == api.JobQueued {
			job = j
		}
	}
	d.behave = behaveOK
	d.version = version
	d.seen[job] = api.JobSucceeded
	eng := s.eng
	s.mu.Unlock()
	if job == "" {
		s.t.Fatalf("%s holds no job", dev)
	}
	if err := eng.HandleJobStatus(ctx, api.JobStatus{DeviceID: dev, JobID: job, State: api.JobSucceeded}); err != nil {
		s.t.Fatal(err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openEngine(t testing.TB, path string, s *sim, c *clock) *Engine {
	t.Helper()
	e, err := Open(path, Options{Devices: s, Dispatcher: s, Now: c.Now, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.eng = e
	s.mu.Unlock()
	return e
}

func testArtifact(version string) api.Artifact {
	return api.Artifact{Kind: "model", Name: "yolo", Version: version, SHA256: strings.Repeat("a", 63) + version[len(version)-1:],
		Size: 100, URL: "/artifacts/x", Manifest: []byte("{}"), Sig: []byte("sig"), KeyID: "k"}
}

// stepUntil steps until cond holds, at most n times.
func stepUntil(t testing.TB, e *Engine, n int, cond func(*Rollout) bool, id string) *Rollout {
	t.Helper()
	for range n {
		if err := e.Step(context.Background()); err != nil {
			t.Fatalf("Step: %v", err)
		}
		r, err := e.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(r) {
			return r
		}
	}
	r, _ := e.Get(id)
	t.Fatalf("condition not met after %d steps: state %s wave %d, %+v", n, r.State, r.Wave, r.Summarize())
	return nil
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "rollouts.db") }
