// Package rollout is fleetd's rollout engine: a persisted state machine that
// takes one signed artifact (a model or an agent bundle) to the devices a
// label selector picks — a few canary devices first, then cumulative waves —
// and stops by itself when too many fail.
//
// The engine sees the fleet through two small interfaces: Devices lists the
// devices matching a selector (with their online flag and current versions)
// and Dispatcher sends an api.Command to one device. Job status reports come
// back through HandleJobStatus, which fleetd's ingest calls.
//
// Rules:
//   - The targets are fixed when the rollout is created, sorted by device id;
//     devices already on the artifact's version are skipped (they count as
//     succeeded).
//   - Wave k starts only when every job of the waves before it has ended and
//     the failures are within MaxFailures.
//   - A job queued for an offline device is sent when the device is back; a
//     job still unfinished JobTimeout after its wave started (offline time
//     included) times out and counts as failed.
//   - Failures beyond MaxFailures abort the rollout: nothing new is sent, and
//     the failed devices get a rollback command to their previous version.
//     Rollback does that for every device the rollout touched.
//   - Pause stops new dispatches and wave changes; jobs in flight continue.
//   - A device that no longer matches the selector counts as offline.
//
// State lives in bbolt and survives a restart: Open reloads it, and jobs that
// were in flight are sent again (devices ignore a job id they have seen, and
// report their state again).
//
// bbolt schema (version 1):
//
//	meta/version      -> "1"
//	meta/epoch        -> 8 hex digits, set when the database is created
//	rollouts/<id>     -> JSON Rollout (with every job)
//
// Rollout ids are r<n>, n from the rollouts bucket's sequence. Job ids are
// <rollout id>-<epoch>-<target index>: the epoch, random and kept in
// meta/epoch, makes job ids of a new database differ from those of an old
// one, which agents remember and would ignore.
package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

// Errors returned (wrapped) by the Engine. Test with errors.Is.
var (
	// ErrNotFound means no rollout or job has that id.
	ErrNotFound = errors.New("not found")
	// ErrState means the operation does not apply in the rollout's state.
	ErrState = errors.New("not allowed in this state")
	// ErrNoTargets means the selector matches no device.
	ErrNoTargets = errors.New("no device matches the selector")
	// ErrClosed means the engine is closed.
	ErrClosed = errors.New("engine closed")
)

// State is a rollout's state.
type State string

// Rollout states. Aborted, Completed and RolledBack are final (though a
// completed or aborted rollout can still be rolled back).
const (
	StatePending    State = "pending"
	StateCanary     State = "canary"
	StateWave       State = "wave" // Rollout.Wave says which
	StatePaused     State = "paused"
	StateAborted    State = "aborted"
	StateCompleted  State = "completed"
	StateRolledBack State = "rolled_back"
)

// Final reports whether no more update jobs will be sent.
func (s State) Final() bool {
	return s == StateAborted || s == StateCompleted || s == StateRolledBack
}

// Job states beyond the device-reported api.Job* ones.
const (
	JobPending    = "pending"    // waiting for its wave, or for the device to come online
	JobDispatched = "dispatched" // sent, nothing heard yet
	JobTimedOut   = "timed_out"
	JobSkipped    = "skipped" // the device already ran the version
)

func jobFinal(s string) bool {
	switch s {
	case api.JobSucceeded, api.JobFailed, api.JobRolledBack, JobTimedOut, JobSkipped:
		return true
	}
	return false
}

func jobFailed(s string) bool {
	return s == api.JobFailed || s == api.JobRolledBack || s == JobTimedOut
}

// Job is one device's part of a rollout.
type Job struct {
	DeviceID string  `json:"device_id"`
	JobID    string  `json:"job_id"`
	Wave     int     `json:"wave"` // 0 = canary
	State    string  `json:"state"`
	Progress float64 `json:"progress,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	// Previous is the version the device ran when the rollout was created.
	Previous string `json:"previous,omitempty"`
	// QueuedAt is when its wave started; the job times out JobTimeout later.
	QueuedAt  time.Time `json:"queued_at,omitzero"`
	SentAt    time.Time `json:"sent_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Rollback is the state of the rollback job sent to this device, if any
	// (same states as State); its job id is JobID + "-rb".
	Rollback       string    `json:"rollback,omitempty"`
	RollbackReason string    `json:"rollback_reason,omitempty"`
	RollbackAt     time.Time `json:"rollback_at,omitzero"`
}

// RollbackJobID is the id of the rollback job for a job.
func RollbackJobID(jobID string) string { return jobID + "-rb" }

// Rollout is a rollout with its jobs.
type Rollout struct {
	ID   string `json:"id"`
	Spec Spec   `json:"spec"`
	// State and, during StateWave (or paused in one), Wave: 1..len(Spec.Waves).
	State State `json:"state"`
	Wave  int   `json:"wave"`
	// Paused from this state (for Resume).
	PausedFrom State     `json:"paused_from,omitempty"`
	Reason     string    `json:"reason,omitempty"` // why it aborted, completed or was rolled back
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// WaveEnd[k] is the number of targets in waves 0..k (canary = wave 0).
	WaveEnd []int `json:"wave_end"`
	Jobs    []Job `json:"jobs"`
}

// WaveProgress counts one wave's jobs.
type WaveProgress struct {
	Wave      int `json:"wave"` // 0 = canary
	Devices   int `json:"devices"`
	Pending   int `json:"pending"`
	InFlight  int `json:"in_flight"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// Summary is a rollout without its per-device jobs, for lists.
type Summary struct {
	ID          string         `json:"id"`
	Kind        string         `json:"kind"`
	Name        string         `json:"name"`
	Version     string         `json:"version"`
	SHA256      string         `json:"sha256"`
	Selector    string         `json:"selector"`
	State       State          `json:"state"`
	Wave        int            `json:"wave"`
	Waves       int            `json:"waves"`
	Reason      string         `json:"reason,omitempty"`
	Targets     int            `json:"targets"`
	Succeeded   int            `json:"succeeded"`
	Failed      int            `json:"failed"`
	MaxFailures int            `json:"max_failures"`
	RolledBack  int            `json:"rolled_back"` // devices whose rollback job succeeded
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	Progress    []WaveProgress `json:"progress"`
}

// Summarize counts r's jobs.
func (r *Rollout) Summarize() Summary {
	s := Summary{ID: r.ID, Kind: r.Spec.Artifact.Kind, Name: r.Spec.Artifact.Name, Version: r.Spec.Artifact.Version,
		SHA256: r.Spec.Artifact.SHA256, Selector: FormatSelector(r.Spec.Selector), State: r.State, Wave: r.Wave,
		Waves: len(r.Spec.Waves), Reason: r.Reason, Targets: len(r.Jobs), MaxFailures: r.Spec.MaxFailures.Limit(len(r.Jobs)),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	s.Progress = make([]WaveProgress, len(r.WaveEnd))
	for w := range s.Progress {
		s.Progress[w].Wave = w
	}
	for _, j := range r.Jobs {
		p := &s.Progress[j.Wave]
		p.Devices++
		switch {
		case jobFailed(j.State):
			p.Failed++
			s.Failed++
		case jobFinal(j.State):
			p.Succeeded++
			s.Succeeded++
		case j.State == JobPending:
			p.Pending++
		default:
			p.InFlight++
		}
		if j.Rollback == api.JobSucceeded {
			s.RolledBack++
		}
	}
	return s
}

// Device is what the engine needs to know of a device.
type Device struct {
	ID     string
	Online bool
	// Model and ModelVersion are what it runs; AgentVersion its firmware.
	Model        string
	ModelVersion string
	AgentVersion string
}

// Devices lists the devices whose labels match every key of the selector
// (an empty selector matches all). fleetd implements it over its registry.
type Devices interface {
	Select(ctx context.Context, selector map[string]string) ([]Device, error)
}

// Dispatcher sends a command to one device (fleetd publishes it on the
// device's commands topic). It must not call back into the Engine
// synchronously with a lock held, but may call HandleJobStatus.
type Dispatcher interface {
	Dispatch(ctx context.Context, deviceID string, cmd api.Command) error
}

// Options configure Open. Devices and Dispatcher are required.
type Options struct {
	Devices    Devices
	Dispatcher Dispatcher
	// Now is the clock; nil means time.Now. Tests pass a fake.
	Now func() time.Time
	// Tick is how often Run steps without being poked; 0 means 1s.
	Tick   time.Duration
	Logger *slog.Logger
	// Registerer receives the engine's metrics; nil means none.
	Registerer prometheus.Registerer
}

type metrics struct {
	commands       *prometheus.CounterVec // by command kind
	dispatchErrors prometheus.Counter
	finished       *prometheus.CounterVec // jobs by final state
	rollouts       *prometheus.GaugeVec   // by state
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_rollout_commands_total",
			Help: "Commands the rollout engine sent to devices, by kind."}, []string{"kind"}),
		dispatchErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgefleet_rollout_dispatch_errors_total",
			Help: "Commands that could not be sent (retried at the next step)."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_rollout_jobs_finished_total",
			Help: "Rollout jobs that ended, by final state."}, []string{"state"}),
		rollouts: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgefleet_rollouts",
			Help: "Rollouts by state."}, []string{"state"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.commands, m.dispatchErrors, m.finished, m.rollouts} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Engine runs rollouts. It is safe for concurrent use.
type Engine struct {
	db   *bolt.DB
	opt  Options
	log  *slog.Logger
	kick chan struct{}

	// stepMu serializes Step so two passes do not dispatch the same job twice.
	stepMu sync.Mutex

	mu       sync.Mutex
	rollouts map[string]*Rollout
	jobs     map[string]jobRef // job id (and rollback job id) -> job
	dirty    map[string]bool   // rollouts to write at the next flush
	resend   map[string]bool   // job ids to send again (after a restart)
	closed   bool
	epoch    string

	m *metrics
}

type jobRef struct {
	r        *Rollout
	i        int
	rollback bool
}

var (
	bucketMeta     = []byte("meta")
	bucketRollouts = []byte("rollouts")
)

const schemaVersion = "1"

// Open opens (creating if needed) the engine's database at path and reloads
// its rollouts.
func Open(path string, opt Options) (*Engine, error) {
	if opt.Devices == nil || opt.Dispatcher == nil {
		return nil, errors.New("rollout: open: Devices and Dispatcher are required")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Tick <= 0 {
		opt.Tick = time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	m, err := newMetrics(opt.Registerer)
	if err != nil {
		return nil, fmt.Errorf("rollout: open: metrics: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("rollout: open: %w", err)
	}
	e := &Engine{db: db, opt: opt, log: opt.Logger, kick: make(chan struct{}, 1), m: m,
		rollouts: map[string]*Rollout{}, jobs: map[string]jobRef{}, dirty: map[string]bool{}, resend: map[string]bool{}}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketRollouts} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		mb := tx.Bucket(bucketMeta)
		if ep := mb.Get([]byte("epoch")); ep != nil {
			e.epoch = string(ep)
		} else {
			var b [4]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			e.epoch = hex.EncodeToString(b[:])
			if err := mb.Put([]byte("epoch"), []byte(e.epoch)); err != nil {
				return err
			}
		}
		switch v := mb.Get([]byte("version")); {
		case v == nil:
			if err := mb.Put([]byte("version"), []byte(schemaVersion)); err != nil {
				return err
			}
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this build reads %q", v, schemaVersion)
		}
		return tx.Bucket(bucketRollouts).ForEach(func(k, v []byte) error {
			r := &Rollout{}
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("rollout %s: %w", k, err)
			}
			e.index(r)
			for _, j := range r.Jobs {
				if j.State != JobPending && !jobFinal(j.State) {
					e.resend[j.JobID] = true
				}
				if j.Rollback != "" && j.Rollback != JobPending && !jobFinal(j.Rollback) {
					e.resend[RollbackJobID(j.JobID)] = true
				}
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("rollout: open: %w", err)
	}
	if len(e.resend) > 0 {
		e.log.Info("rollout engine resumed", "rollouts", len(e.rollouts), "jobs_to_resend", len(e.resend))
	}
	return e, nil
}

func (e *Engine) index(r *Rollout) {
	e.rollouts[r.ID] = r
	for i, j := range r.Jobs {
		e.jobs[j.JobID] = jobRef{r: r, i: i}
		e.jobs[RollbackJobID(j.JobID)] = jobRef{r: r, i: i, rollback: true}
	}
}

// Close writes pending changes and closes the database; safe to call twice.
func (e *Engine) Close() error {
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	err := e.flushLocked()
	e.closed = true
	e.mu.Unlock()
	if cerr := e.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("rollout: close: %w", cerr)
	}
	return err
}

func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run steps the engine every Tick and whenever a job status or an operation
// arrives, until ctx ends; it flushes state before returning.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.opt.Tick)
	defer t.Stop()
	for {
		if err := e.Step(ctx); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			e.log.Error("rollout step", "err", err)
		}
		select {
		case <-ctx.Done():
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.closed {
				return nil
			}
			return e.flushLocked()
		case <-t.C:
		case <-e.kick:
		}
	}
}

// Create starts a rollout: it snapshots the matching devices as targets and
// persists the rollout; Run (or Step) then sends the canary jobs.
func (e *Engine) Create(ctx context.Context, spec Spec) (Summary, error) {
	if spec.JobTimeout == 0 {
		spec.JobTimeout = 30 * time.Minute
		if spec.HealthWindow >= spec.JobTimeout {
			spec.JobTimeout = 2 * spec.HealthWindow
		}
	}
	if err := spec.Validate(); err != nil {
		return Summary{}, fmt.Errorf("rollout: create: %w", err)
	}
	devs, err := e.opt.Devices.Select(ctx, spec.Selector)
	if err != nil {
		return Summary{}, fmt.Errorf("rollout: create: devices: %w", err)
	}
	if len(devs) == 0 {
		return Summary{}, fmt.Errorf("rollout: create: %w %s", ErrNoTargets, FormatSelector(spec.Selector))
	}
	slices.SortFunc(devs, func(a, b Device) int { return strings.Compare(a.ID, b.ID) })
	devs = slices.CompactFunc(devs, func(a, b Device) bool { return a.ID == b.ID })
	now := e.opt.Now()
	r := &Rollout{Spec: spec, State: StatePending, CreatedAt: now, UpdatedAt: now}
	n := len(devs)
	canary := min(spec.Canary, n)
	r.WaveEnd = append(r.WaveEnd, canary)
	for _, w := range spec.Waves {
		end := int(math.Ceil(w * float64(n) / 100))
		r.WaveEnd = append(r.WaveEnd, max(min(end, n), r.WaveEnd[len(r.WaveEnd)-1]))
	}
	// Devices beyond the last wave (when it is below 100%) are not targets.
	devs = devs[:r.WaveEnd[len(r.WaveEnd)-1]]

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Summary{}, fmt.Errorf("rollout: %w", ErrClosed)
	}
	err = e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.ID = "r" + strconv.FormatUint(seq, 10)
		wave := 0
		for i, d := range devs {
			for i >= r.WaveEnd[wave] {
				wave++
			}
			j := Job{DeviceID: d.ID, JobID: r.ID + "-" + e.epoch + "-" + strconv.Itoa(i), Wave: wave, State: JobPending, UpdatedAt: now}
			if spec.Artifact.Kind == "firmware" {
				j.Previous = d.AgentVersion
			} else {
				j.Previous = d.ModelVersion
				if d.Model != "" && d.Model != spec.Artifact.Name {
					j.Previous = d.Model + "@" + d.ModelVersion
				}
			}
			if j.Previous == spec.Artifact.Version {
				j.State, j.Reason = JobSkipped, "already runs "+spec.Artifact.Version
			}
			r.Jobs = append(r.Jobs, j)
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return b.Put([]byte(r.ID), v)
	})
	if err != nil {
		return Summary{}, fmt.Errorf("rollout: create: %w", err)
	}
	e.index(r)
	e.log.Info("rollout created", "rollout_id", r.ID, "name", spec.Artifact.Name, "version", spec.Artifact.Version,
		"targets", len(r.Jobs), "canary", canary, "waves", len(spec.Waves), "max_failures", spec.MaxFailures.Limit(len(r.Jobs)))
	e.poke()
	return r.Summarize(), nil
}

// Get returns a copy of a rollout with its jobs.
func (e *Engine) Get(id string) (*Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.rollouts[id]
	if !ok {
		return nil, fmt.Errorf("rollout: get %s: %w", id, ErrNotFound)
	}
	c := *r
	c.Jobs = slices.Clone(r.Jobs)
	c.WaveEnd = slices.Clone(r.WaveEnd)
	return &c, nil
}

// List returns every rollout's summary, newest first.
func (e *Engine) List() []Summary {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Summary, 0, len(e.rollouts))
	for _, r := range e.rollouts {
		out = append(out, r.Summarize())
	}
	slices.SortFunc(out, func(a, b Summary) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out
}

// ArtifactInUse returns the rollouts not yet final that send the artifact;
// the artifact store refuses to delete it while there are any.
func (e *Engine) ArtifactInUse(sha256 string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for _, r := range e.rollouts {
		if r.Spec.Artifact.SHA256 == sha256 && !r.State.Final() {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// op applies an operator action under the lock and persists it at once.
func (e *Engine) op(id, name string, f func(r *Rollout, now time.Time) error) (Summary, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Summary{}, fmt.Errorf("rollout: %w", ErrClosed)
	}
	r, ok := e.rollouts[id]
	if !ok {
		return Summary{}, fmt.Errorf("rollout: %s %s: %w", name, id, ErrNotFound)
	}
	now := e.opt.Now()
	if err := f(r, now); err != nil {
		return Summary{}, fmt.Errorf("rollout: %s %s: %w", name, id, err)
	}
	r.UpdatedAt = now
	e.dirty[id] = true
	if err := e.flushLocked(); err != nil {
		return Summary{}, err
	}
	e.log.Info("rollout "+name, "rollout_id", id, "state", r.State)
	e.poke()
	return r.Summarize(), nil
}

// Pause stops new dispatches and wave changes.
func (e *Engine) Pause(id string) (Summary, error) {
	return e.op(id, "pause", func(r *Rollout, _ time.Time) error {
		if r.State.Final() || r.State == StatePaused {
			return fmt.Errorf("%w: %s", ErrState, r.State)
		}
		r.PausedFrom, r.State = r.State, StatePaused
		return nil
	})
}

// Resume continues a paused rollout; jobs still waiting to be sent get a
// fresh timeout.
func (e *Engine) Resume(id string) (Summary, error) {
	return e.op(id, "resume", func(r *Rollout, now time.Time) error {
		if r.State != StatePaused {
			return fmt.Errorf("%w: %s", ErrState, r.State)
		}
		r.State, r.PausedFrom = r.PausedFrom, ""
		for i := range r.Jobs {
			if j := &r.Jobs[i]; j.State == JobPending && !j.QueuedAt.IsZero() {
				j.QueuedAt = now
			}
		}
		return nil
	})
}

// Abort stops the rollout and sends the failed devices back.
func (e *Engine) Abort(id, reason string) (Summary, error) {
	return e.op(id, "abort", func(r *Rollout, now time.Time) error {
		if r.State.Final() {
			return fmt.Errorf("%w: %s", ErrState, r.State)
		}
		e.abortLocked(r, now, "aborted by operator: "+reason)
		return nil
	})
}

// Rollback stops the rollout and sends every device it updated, or tried
// to, back to its previous version.
func (e *Engine) Rollback(id string) (Summary, error) {
	return e.op(id, "rollback", func(r *Rollout, now time.Time) error {
		if r.State == StateRolledBack {
			return fmt.Errorf("%w: %s", ErrState, r.State)
		}
		r.State, r.Reason = StateRolledBack, "rolled back by operator"
		// Jobs in flight get theirs when they end (afterFinalLocked), so a
		// rollback cannot overtake the update it undoes.
		for i := range r.Jobs {
			if j := &r.Jobs[i]; j.State == api.JobSucceeded || failedOnDevice(j) {
				queueRollback(j, now)
			}
		}
		return nil
	})
}

func (e *Engine) abortLocked(r *Rollout, now time.Time, reason string) {
	r.State, r.Reason, r.PausedFrom, r.UpdatedAt = StateAborted, reason, "", now
	for i := range r.Jobs {
		if j := &r.Jobs[i]; failedOnDevice(j) {
			queueRollback(j, now)
		}
	}
	e.dirty[r.ID] = true
	e.log.Warn("rollout aborted", "rollout_id", r.ID, "reason", reason)
}

// failedOnDevice reports whether a job failed in a way that may have left
// its device on the new version: it failed (and did not roll back by
// itself), or timed out after it was sent. A job that timed out waiting for
// an offline device never reached it.
func failedOnDevice(j *Job) bool {
	return j.State == api.JobFailed || j.State == JobTimedOut && !j.SentAt.IsZero()
}

func queueRollback(j *Job, now time.Time) {
	if j.Rollback == "" {
		j.Rollback, j.RollbackAt = JobPending, now
	}
}

// HandleJobStatus records a device's job report; fleetd's ingest calls it
// for every api.JobStatus. Reports for unknown jobs return ErrNotFound;
// reports after a job ended are ignored.
func (e *Engine) HandleJobStatus(_ context.Context, st api.JobStatus) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("rollout: %w", ErrClosed)
	}
	switch st.State {
	case api.JobQueued, api.JobDownloading, api.JobVerifying, api.JobInstalling, api.JobHealthCheck,
		api.JobSucceeded, api.JobFailed, api.JobRolledBack:
	default:
		return fmt.Errorf("rollout: job status: unknown state %q", st.State)
	}
	ref, ok := e.jobs[st.JobID]
	if !ok {
		return fmt.Errorf("rollout: job status: %w: job %s", ErrNotFound, st.JobID)
	}
	r := ref.r
	j := &r.Jobs[ref.i]
	if j.DeviceID != st.DeviceID {
		return fmt.Errorf("rollout: job status: job %s belongs to %s, not %s", st.JobID, j.DeviceID, st.DeviceID)
	}
	now := e.opt.Now()
	if ref.rollback {
		if j.Rollback == "" || jobFinal(j.Rollback) {
			return nil
		}
		j.Rollback, j.RollbackReason, j.RollbackAt = st.State, st.Reason, now
		e.dirty[r.ID] = true
		if jobFinal(st.State) {
			e.poke()
		}
		return nil
	}
	if jobFinal(j.State) {
		return nil
	}
	j.State, j.Progress, j.UpdatedAt = st.State, st.Progress, now
	if st.Reason != "" {
		j.Reason = st.Reason
	}
	e.dirty[r.ID] = true
	if jobFinal(st.State) {
		j.Progress = 0
		e.afterFinalLocked(r, j, now)
		e.poke()
	}
	return nil
}

// afterFinalLocked applies the consequences of a job that just ended.
func (e *Engine) afterFinalLocked(r *Rollout, j *Job, now time.Time) {
	e.m.finished.WithLabelValues(j.State).Inc()
	switch {
	case r.State == StateRolledBack && j.State == api.JobSucceeded,
		r.State.Final() && failedOnDevice(j):
		queueRollback(j, now)
	}
	if !r.State.Final() && jobFailed(j.State) {
		s := r.Summarize()
		if s.Failed > s.MaxFailures {
			e.abortLocked(r, now, fmt.Sprintf("%d failures exceed max-failures %s (%d of %d devices)", s.Failed, r.Spec.MaxFailures, s.MaxFailures, s.Targets))
		}
	}
}

type send struct {
	r   string
	job string
	dev string
	cmd api.Command
}

// Step runs one pass of the state machine: it times out stuck jobs, aborts
// rollouts past their failure budget, starts waves whose predecessors are
// done, sends jobs to online devices, and writes the changes. Run calls it;
// tests call it directly with a fake clock.
func (e *Engine) Step(ctx context.Context) error {
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fmt.Errorf("rollout: %w", ErrClosed)
	}
	now := e.opt.Now()
	type need struct {
		id  string
		sel map[string]string
	}
	var needs []need
	for id, r := range e.rollouts {
		e.advanceLocked(r, now)
		if e.wantsDevicesLocked(r) {
			needs = append(needs, need{id, r.Spec.Selector})
		}
	}
	e.mu.Unlock()

	// Ask for device state without holding the lock.
	online := map[string]map[string]bool{}
	var errs []error
	for _, n := range needs {
		devs, err := e.opt.Devices.Select(ctx, n.sel)
		if err != nil {
			errs = append(errs, fmt.Errorf("rollout %s: devices: %w", n.id, err))
			continue
		}
		m := make(map[string]bool, len(devs))
		for _, d := range devs {
			if d.Online {
				m[d.ID] = true
			}
		}
		online[n.id] = m
	}

	e.mu.Lock()
	var sends []send
	for id, on := range online {
		if r, ok := e.rollouts[id]; ok {
			sends = e.collectLocked(r, on, now, sends)
		}
	}
	// Write what is about to be sent (and the wave it belongs to) before
	// any command leaves: after a crash the stored state is never behind
	// the devices, and a resend reuses the same job ids.
	if len(sends) > 0 {
		if err := e.flushLocked(); err != nil {
			e.mu.Unlock()
			return errors.Join(append(errs, err)...)
		}
	}
	e.mu.Unlock()

	for _, s := range sends {
		if err := e.opt.Dispatcher.Dispatch(ctx, s.dev, s.cmd); err != nil {
			errs = append(errs, fmt.Errorf("rollout %s: dispatch %s to %s: %w", s.r, s.job, s.dev, err))
			e.m.dispatchErrors.Inc()
			e.undoSend(s)
			continue
		}
		e.m.commands.WithLabelValues(s.cmd.Kind).Inc()
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("rollout: %w", ErrClosed)
	}
	if err := e.flushLocked(); err != nil {
		errs = append(errs, err)
	}
	counts := map[State]int{}
	for _, r := range e.rollouts {
		counts[r.State]++
	}
	for _, st := range []State{StatePending, StateCanary, StateWave, StatePaused, StateAborted, StateCompleted, StateRolledBack} {
		e.m.rollouts.WithLabelValues(string(st)).Set(float64(counts[st]))
	}
	return errors.Join(errs...)
}

// advanceLocked times jobs out, enforces the failure budget and moves waves.
func (e *Engine) advanceLocked(r *Rollout, now time.Time) {
	timeout := r.Spec.JobTimeout
	for i := range r.Jobs {
		j := &r.Jobs[i]
		// Jobs waiting in a paused rollout have not been sent: their clock restarts on Resume.
		waiting := j.State == JobPending && (r.State == StatePaused || r.State.Final())
		if !j.QueuedAt.IsZero() && !jobFinal(j.State) && !waiting && now.Sub(j.QueuedAt) > timeout {
			j.Reason = fmt.Sprintf("no final report within %s (last state %s)", timeout, j.State)
			j.State, j.UpdatedAt = JobTimedOut, now
			e.dirty[r.ID] = true
			e.afterFinalLocked(r, j, now)
		}
		// A rollback waits for its device as long as it takes; once sent it has JobTimeout to end.
		if j.Rollback != "" && j.Rollback != JobPending && !jobFinal(j.Rollback) && now.Sub(j.RollbackAt) > timeout {
			j.Rollback, j.RollbackReason, j.RollbackAt = JobTimedOut, "rollback not confirmed within "+timeout.String(), now
			e.dirty[r.ID] = true
		}
	}
	for r.State == StatePending || r.State == StateCanary || r.State == StateWave {
		if r.State != StatePending {
			for _, j := range r.Jobs[:r.WaveEnd[r.Wave]] {
				if !jobFinal(j.State) {
					return
				}
			}
		}
		next := r.Wave + 1
		if r.State == StatePending {
			next = 0
		}
		if next >= len(r.WaveEnd) {
			s := r.Summarize()
			r.State, r.UpdatedAt = StateCompleted, now
			r.Reason = fmt.Sprintf("%d of %d devices updated, %d failed", s.Succeeded, s.Targets, s.Failed)
			e.dirty[r.ID] = true
			e.log.Info("rollout completed", "rollout_id", r.ID, "succeeded", s.Succeeded, "failed", s.Failed)
			return
		}
		r.Wave, r.UpdatedAt = next, now
		r.State = StateWave
		if next == 0 {
			r.State = StateCanary
		}
		start := 0
		if next > 0 {
			start = r.WaveEnd[next-1]
		}
		for i := start; i < r.WaveEnd[next]; i++ {
			if r.Jobs[i].QueuedAt.IsZero() {
				r.Jobs[i].QueuedAt = now
			}
		}
		e.dirty[r.ID] = true
		e.log.Info("rollout wave started", "rollout_id", r.ID, "wave", next, "devices", r.WaveEnd[next]-start)
	}
}

func (e *Engine) wantsDevicesLocked(r *Rollout) bool {
	running := r.State == StateCanary || r.State == StateWave
	for _, j := range r.Jobs {
		if running && j.Wave <= r.Wave && (j.State == JobPending || e.resend[j.JobID]) {
			return true
		}
		if j.Rollback == JobPending || j.Rollback != "" && e.resend[RollbackJobID(j.JobID)] {
			return true
		}
	}
	return false
}

// collectLocked marks the jobs to send to online devices as dispatched.
func (e *Engine) collectLocked(r *Rollout, online map[string]bool, now time.Time, out []send) []send {
	running := r.State == StateCanary || r.State == StateWave
	a := r.Spec.Artifact
	kind := api.CommandModelUpdate
	if a.Kind == "firmware" {
		kind = api.CommandFirmwareUpdate
	}
	for i := range r.Jobs {
		j := &r.Jobs[i]
		if !online[j.DeviceID] {
			continue
		}
		if running && j.Wave <= r.Wave && (j.State == JobPending || e.resend[j.JobID] && !jobFinal(j.State)) {
			delete(e.resend, j.JobID)
			if j.State == JobPending {
				j.State, j.SentAt, j.UpdatedAt = JobDispatched, now, now
			}
			art := a
			out = append(out, send{r.ID, j.JobID, j.DeviceID, api.Command{JobID: j.JobID, Kind: kind, Artifact: &art,
				DeadlineMs: j.QueuedAt.Add(r.Spec.JobTimeout).UnixMilli(), HealthWindowS: r.Spec.HealthWindow.Seconds()}})
			e.dirty[r.ID] = true
		}
		rb := RollbackJobID(j.JobID)
		if j.Rollback == JobPending || e.resend[rb] && j.Rollback != "" && !jobFinal(j.Rollback) {
			delete(e.resend, rb)
			if j.Rollback == JobPending {
				j.Rollback, j.RollbackAt = JobDispatched, now
			}
			out = append(out, send{r.ID, rb, j.DeviceID, api.Command{JobID: rb, Kind: api.CommandRollback,
				DeadlineMs: now.Add(r.Spec.JobTimeout).UnixMilli()}})
			e.dirty[r.ID] = true
		}
	}
	return out
}

// undoSend puts a job whose dispatch failed back to be sent at the next step.
func (e *Engine) undoSend(s send) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ref, ok := e.jobs[s.job]
	if !ok {
		return
	}
	j := &ref.r.Jobs[ref.i]
	if ref.rollback {
		if j.Rollback == JobDispatched {
			j.Rollback = JobPending
		}
	} else if j.State == JobDispatched {
		j.State = JobPending
	}
	e.dirty[ref.r.ID] = true
}

// flushLocked writes the dirty rollouts in one transaction.
func (e *Engine) flushLocked() error {
	if len(e.dirty) == 0 {
		return nil
	}
	err := e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		for id := range e.dirty {
			v, err := json.Marshal(e.rollouts[id])
			if err != nil {
				return err
			}
			if err := b.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rollout: flush: %w", err)
	}
	clear(e.dirty)
	return nil
}
