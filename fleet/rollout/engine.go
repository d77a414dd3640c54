package rollout

import (
	"context"
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

	"edgefleet/fleet/api"
)

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

// DefaultSilence is Options.Silence when zero.
const DefaultSilence = 30 * time.Second

// Options configure Open and New. Devices and Dispatcher are required.
type Options struct {
	Devices    Devices
	Dispatcher Dispatcher
	// Now is the clock; nil means time.Now. Tests pass a fake.
	Now func() time.Time
	// Tick is how often Run steps without being poked; 0 means 1s.
	Tick time.Duration
	// Silence is how long a sent job may go without a word from its device
	// before it is sent again (same job id: a device that has finished it
	// reports the final state again, one still running it ignores it). It
	// recovers a report or command lost in flight, e.g. to a fleetd replica
	// killed before it stored the report. 0 means DefaultSilence.
	Silence time.Duration
	Logger  *slog.Logger
	// Registerer receives the engine's metrics; nil means none.
	Registerer prometheus.Registerer

	// metrics, when set (by a Cluster, which starts an engine each time
	// it takes the lease), is used instead of registering new ones.
	metrics *metrics
}

// Engine runs rollouts. It is safe for concurrent use.
type Engine struct {
	store Store
	opt   Options
	log   *slog.Logger
	kick  chan struct{}
	epoch string

	// stepMu serializes Step so two passes do not dispatch the same job twice.
	stepMu sync.Mutex

	mu       sync.Mutex
	rollouts map[string]*Rollout
	jobs     map[string]jobRef        // job id (and rollback job id) -> job
	dirty    map[string]bool          // rollouts to write at the next flush
	resend   map[string]bool          // job ids to send again (after a restart, or a silence)
	lastSent map[string]time.Time     // job id -> when this engine last sent it
	shadow   map[string]*ShadowRecord // shadowKey -> reports to write at the next flush
	closed   bool

	m *metrics
}

type jobRef struct {
	r        *Rollout
	i        int
	rollback bool
}

// Open opens (creating if needed) a Bolt store at path and an engine on it.
func Open(path string, opt Options) (*Engine, error) {
	if opt.Devices == nil || opt.Dispatcher == nil {
		return nil, errors.New("rollout: open: Devices and Dispatcher are required")
	}
	s, err := OpenBolt(path)
	if err != nil {
		return nil, err
	}
	e, err := New(context.Background(), s, opt)
	if err != nil {
		s.Close()
		return nil, err
	}
	return e, nil
}

// New starts an engine on s and reloads its rollouts. The engine owns s
// from then on: Close closes it.
func New(ctx context.Context, s Store, opt Options) (*Engine, error) {
	if opt.Devices == nil || opt.Dispatcher == nil {
		return nil, errors.New("rollout: open: Devices and Dispatcher are required")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Silence <= 0 {
		opt.Silence = DefaultSilence
	}
	if opt.Tick <= 0 {
		opt.Tick = time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	m := opt.metrics
	if m == nil {
		var err error
		if m, err = newMetrics(opt.Registerer); err != nil {
			return nil, fmt.Errorf("rollout: open: metrics: %w", err)
		}
	}
	rs, err := s.Load(ctx)
	if err != nil {
		return nil, err
	}
	e := &Engine{store: s, opt: opt, log: opt.Logger, kick: make(chan struct{}, 1), m: m, epoch: s.Epoch(),
		rollouts: map[string]*Rollout{}, jobs: map[string]jobRef{}, dirty: map[string]bool{}, resend: map[string]bool{},
		lastSent: map[string]time.Time{}, shadow: map[string]*ShadowRecord{}}
	for _, r := range rs {
		e.index(r)
		if r.State.Final() && cancelUnsent(r, opt.Now(), r.Reason) > 0 {
			e.dirty[r.ID] = true // stored before stopped rollouts cancelled their unsent jobs
		}
		for _, j := range r.Jobs {
			if j.State != JobPending && !jobFinal(j.State) {
				e.resend[j.JobID] = true
			}
			if j.Rollback != "" && j.Rollback != JobPending && !jobFinal(j.Rollback) {
				e.resend[RollbackJobID(j.JobID)] = true
			}
		}
	}
	if len(e.resend) > 0 {
		e.log.Info("rollout engine resumed", "rollouts", len(e.rollouts), "jobs_to_resend", len(e.resend))
	}
	return e, nil
}

// has reports whether the engine knows rollout id.
func (e *Engine) has(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.rollouts[id]
	return ok
}

// adopt takes a rollout another replica created into the engine.
func (e *Engine) adopt(r *Rollout) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.rollouts[r.ID]; ok || e.closed {
		return
	}
	e.index(r)
	e.poke()
}

// flush writes pending changes now.
func (e *Engine) flush() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	return e.flushLocked()
}

func (e *Engine) index(r *Rollout) {
	e.rollouts[r.ID] = r
	for i, j := range r.Jobs {
		e.jobs[j.JobID] = jobRef{r: r, i: i}
		e.jobs[RollbackJobID(j.JobID)] = jobRef{r: r, i: i, rollback: true}
	}
}

// Close writes pending changes and closes the store; safe to call twice.
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
	return errors.Join(err, e.store.Close())
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

// Create starts a rollout on an operator's behalf; see CreateBy.
func (e *Engine) Create(ctx context.Context, spec Spec) (Summary, error) {
	return e.CreateBy(ctx, spec, "")
}

// CreateBy starts a rollout: it snapshots the matching devices as targets
// and persists the rollout; Run (or Step) then sends the canary jobs. by
// names the operator for the rollout's history ("" means ActorOperator).
func (e *Engine) CreateBy(ctx context.Context, spec Spec, by string) (Summary, error) {
	p, err := planRollout(ctx, e.opt.Devices, spec)
	if err != nil {
		return Summary{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Summary{}, ErrClosed
	}
	r, err := e.store.Create(ctx, p.fill(e.epoch, e.opt.Now(), by))
	if err != nil {
		return Summary{}, fmt.Errorf("rollout: create: %w", err)
	}
	e.index(r)
	p.logCreated(e.log, r)
	e.poke()
	return r.Summarize(), nil
}

// plan is a rollout about to be created: its spec with the defaults
// applied, and its targets in waves.
type plan struct {
	spec    Spec
	devs    []Device
	waveEnd []int
}

// planRollout validates spec, applies its defaults and snapshots the
// matching devices as targets.
func planRollout(ctx context.Context, devices Devices, spec Spec) (plan, error) {
	spec = spec.clone()
	if spec.JobTimeout == 0 {
		spec.JobTimeout = 30 * time.Minute
		if need := spec.HealthWindow + spec.shadowDuration(); need >= spec.JobTimeout {
			spec.JobTimeout = 2 * need
		}
	}
	if spec.RollbackOnAbort == nil {
		yes := true
		spec.RollbackOnAbort = &yes
	}
	if err := spec.Validate(); err != nil {
		return plan{}, fmt.Errorf("rollout: create: %w", err)
	}
	devs, err := devices.Select(ctx, spec.Selector)
	if err != nil {
		return plan{}, fmt.Errorf("rollout: create: devices: %w", err)
	}
	if len(devs) == 0 {
		return plan{}, fmt.Errorf("%w %q", ErrNoTargets, FormatSelector(spec.Selector))
	}
	slices.SortFunc(devs, func(a, b Device) int { return strings.Compare(a.ID, b.ID) })
	devs = slices.CompactFunc(devs, func(a, b Device) bool { return a.ID == b.ID })
	waveEnd := planWaves(len(devs), spec.Canary, spec.Waves)
	// Devices beyond the last wave (when it is below 100%) are not targets.
	return plan{spec: spec, devs: devs[:waveEnd[len(waveEnd)-1]], waveEnd: waveEnd}, nil
}

// fill builds the rollout for Store.Create.
func (p plan) fill(epoch string, now time.Time, by string) func(id string) (*Rollout, error) {
	spec, waveEnd := p.spec, p.waveEnd
	return func(id string) (*Rollout, error) {
		r := &Rollout{ID: id, Spec: spec, State: StatePending, CreatedAt: now, UpdatedAt: now, WaveEnd: waveEnd}
		r.Jobs = newJobs(id, epoch, spec, p.devs, waveEnd, now)
		r.Transitions = []Transition{{At: now, To: string(StatePending), By: orDefault(by, ActorOperator), Reason: fmt.Sprintf("created: %d targets, canary %d, waves %v, max-failures %s, max-failure-rate %v",
			len(r.Jobs), waveEnd[0], spec.Waves, spec.MaxFailures, spec.MaxFailureRate)}}
		return r, nil
	}
}

func (p plan) logCreated(log *slog.Logger, r *Rollout) {
	spec := p.spec
	log.Info("rollout created", "rollout_id", r.ID, "name", spec.Artifact.Name, "version", spec.Artifact.Version,
		"targets", len(r.Jobs), "canary", p.waveEnd[0], "waves", len(spec.Waves), "max_failures", spec.MaxFailures.Limit(len(r.Jobs)),
		"max_failure_rate", spec.MaxFailureRate)
}

// planWaves returns WaveEnd for n targets.
func planWaves(n, canary int, waves []float64) []int {
	end := []int{min(canary, n)}
	for _, w := range waves {
		e := int(math.Ceil(w * float64(n) / 100))
		end = append(end, max(min(e, n), end[len(end)-1]))
	}
	return end
}

func newJobs(id, epoch string, spec Spec, devs []Device, waveEnd []int, now time.Time) []Job {
	jobs := make([]Job, 0, len(devs))
	wave := 0
	for i, d := range devs {
		for i >= waveEnd[wave] {
			wave++
		}
		j := Job{DeviceID: d.ID, JobID: id + "-" + epoch + "-" + strconv.Itoa(i), Wave: wave, State: JobPending, UpdatedAt: now}
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
		jobs = append(jobs, j)
	}
	return jobs
}

// Get returns a copy of a rollout with its jobs and history.
func (e *Engine) Get(id string) (*Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.rollouts[id]
	if !ok {
		return nil, fmt.Errorf("%w: get %s", ErrNotFound, id)
	}
	return r.clone(), nil
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

// flushLocked writes the shadow reports kept and the dirty rollouts: in
// one atomic step where the store can (AtomicSaver), so that a crash never
// keeps a device's shadow reports without the job state they came with;
// else the reports, then the rollouts in one transaction.
func (e *Engine) flushLocked() error {
	ctx := context.Background()
	rs := make([]*Rollout, 0, len(e.dirty))
	for id := range e.dirty {
		rs = append(rs, e.rollouts[id])
	}
	if a, ok := e.store.(AtomicSaver); ok && len(e.shadow) > 0 {
		if err := a.SaveWithShadow(ctx, e.shadowRecordsLocked(), rs...); err != nil {
			return err
		}
		clear(e.shadow)
		clear(e.dirty)
		return nil
	}
	if err := e.flushShadowLocked(ctx); err != nil {
		return err
	}
	if len(rs) == 0 {
		return nil
	}
	if err := e.store.Save(ctx, rs...); err != nil {
		return err
	}
	clear(e.dirty)
	return nil
}
