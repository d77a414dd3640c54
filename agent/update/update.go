// Package update is the agent's executor of over-the-air model updates.
//
// The fleet sends an api.Command; the Executor queues it (idempotent on the
// job id, which it persists), then, one job at a time: verifies the signed
// manifest against the pinned keys, downloads the model over HTTP (resuming
// an interrupted download with a Range request from the partial file's size),
// checks its sha256 and size against the manifest, checks that its tensors
// are those the manifest declares and that the pipeline can run them, stages
// it in the data directory, smoke-tests it on a reference frame, swaps it in
// between two frames, and watches a health window before it commits the new
// model or swaps the last known good one back. Every transition is reported
// (queued, downloading with progress, verifying, installing, health_check,
// succeeded, failed with a reason, rolled_back).
//
// state.json in the data directory says which model is current (the last
// known good), which one came before it, and which is on trial. The agent
// starts on Current; a trial left by a crash is rolled back when the
// Executor opens, so a model that takes the box down never survives a
// reboot.
package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"edgefleet/agent/shadow"
	"edgefleet/fleet/api"
	"edgefleet/internal/atomicfile"
	"edgefleet/models"
	"edgefleet/models/backend"
	"edgefleet/models/manifest"
	"edgefleet/models/meta"
)

// Errors a job fails with (wrapped; the job's reason is the whole message).
// Signature failures wrap manifest.ErrUnsigned, ErrUnknownKey, ErrBadSignature
// or ErrMalformed.
var (
	// ErrMismatch means the artifact's bytes, size or tensors differ from its
	// signed manifest, or the command's artifact from the manifest.
	ErrMismatch = manifest.ErrMismatch
	// ErrTruncated means the server holds fewer bytes than the signed size.
	ErrTruncated = errors.New("update: truncated artifact")
	// ErrTooLarge means the server sends more bytes than the signed size.
	ErrTooLarge = errors.New("update: artifact larger than its signed size")
	// ErrHTTP is an HTTP error status from the artifact server.
	ErrHTTP = errors.New("update: http error")
	// ErrNoFit means the model's inputs or outputs do not fit the pipeline.
	ErrNoFit = errors.New("update: model does not fit the pipeline")
	// ErrSmoke means the model failed the smoke test before the swap.
	ErrSmoke = errors.New("update: smoke test failed")
	// ErrUnhealthy means the model failed its health window and was rolled back.
	ErrUnhealthy = errors.New("update: unhealthy")
	// ErrDeadline means the job's deadline passed before it finished.
	ErrDeadline = errors.New("update: job deadline passed")
	// ErrUnsupported is a command this executor does not run.
	ErrUnsupported = errors.New("update: unsupported command")
	// ErrNoPrevious means a rollback command found no previous model.
	ErrNoPrevious = errors.New("update: no previous model to roll back to")
	// ErrRestarted means the agent restarted while a model was on trial.
	ErrRestarted = errors.New("update: agent restarted during the health window")
)

// Verifier checks a signed manifest; manifest.Verify over a KeySet is the
// real one.
type Verifier interface {
	Verify(payload, sig []byte, keyID string) (*manifest.Manifest, error)
}

// KeySetVerifier verifies with manifest.Verify against pinned keys.
type KeySetVerifier manifest.KeySet

// Verify implements Verifier.
func (k KeySetVerifier) Verify(payload, sig []byte, keyID string) (*manifest.Manifest, error) {
	return manifest.Verify(manifest.KeySet(k), payload, sig, keyID)
}

// Reporter publishes job state transitions (agent/link's PublishJob).
type Reporter interface {
	Report(ctx context.Context, s api.JobStatus) error
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(ctx context.Context, s api.JobStatus) error

// Report implements Reporter.
func (f ReporterFunc) Report(ctx context.Context, s api.JobStatus) error { return f(ctx, s) }

// Swapper replaces the engine the pipeline runs between two frames and
// returns the one it replaced, which the caller then owns. Serving is the real one.
type Swapper interface {
	Swap(ctx context.Context, eng models.Engine, m *manifest.Manifest) (old models.Engine, err error)
}

// Stats are inference figures over a window of time.
type Stats struct {
	Frames     uint64        // images inferred
	Errors     uint64        // failed inference calls
	Detections uint64        // detections returned
	P50        time.Duration // median per-image latency (of the newest frames)
}

// Health measures the inference the pipeline serves. Serving is the real one.
type Health interface {
	// Peek returns the figures of the current window.
	Peek() Stats
	// Mark returns the figures of the current window and starts a new one.
	Mark() Stats
}

// HealthPolicy decides whether a model passed its health window, comparing
// it with the window before the swap. The zero value tolerates no inference
// error, needs at least one frame, and fails a p50 latency above twice the
// previous one or a detection rate below half the previous one.
type HealthPolicy struct {
	// MaxErrors is the most inference errors tolerated in the window.
	MaxErrors uint64
	// MinFrames is the fewest frames the window must see; 0 means 1.
	MinFrames uint64
	// MaxLatencyRatio fails a p50 above this multiple of the one before; 0 means 2.
	MaxLatencyRatio float64
	// MinDetectionRatio fails detections per frame below this fraction of
	// the rate before; 0 means 0.5, negative turns the check off.
	MinDetectionRatio float64
}

func (p HealthPolicy) withDefaults() HealthPolicy {
	if p.MinFrames == 0 {
		p.MinFrames = 1
	}
	if p.MaxLatencyRatio == 0 {
		p.MaxLatencyRatio = 2
	}
	if p.MinDetectionRatio == 0 {
		p.MinDetectionRatio = 0.5
	}
	return p
}

// judgeErrors fails as soon as the errors pass the bound.
func (p HealthPolicy) judgeErrors(cur Stats) error {
	if cur.Errors > p.MaxErrors {
		return fmt.Errorf("%w: %d inference errors in the health window (at most %d allowed)", ErrUnhealthy, cur.Errors, p.MaxErrors)
	}
	return nil
}

// judge decides at the end of the window.
func (p HealthPolicy) judge(before, cur Stats) error {
	if err := p.judgeErrors(cur); err != nil {
		return err
	}
	if cur.Frames < p.MinFrames {
		return fmt.Errorf("%w: %d frames inferred in the health window (need %d)", ErrUnhealthy, cur.Frames, p.MinFrames)
	}
	if before.Frames < p.MinFrames {
		return nil // nothing to compare with
	}
	if before.P50 > 0 && float64(cur.P50) > p.MaxLatencyRatio*float64(before.P50) {
		return fmt.Errorf("%w: p50 latency %v, was %v before (more than %.3gx)", ErrUnhealthy,
			cur.P50.Round(time.Microsecond), before.P50.Round(time.Microsecond), p.MaxLatencyRatio)
	}
	if p.MinDetectionRatio > 0 && before.Detections > 0 {
		was := float64(before.Detections) / float64(before.Frames)
		now := float64(cur.Detections) / float64(cur.Frames)
		if now < p.MinDetectionRatio*was {
			return fmt.Errorf("%w: detection rate collapsed to %.3g per frame, was %.3g before (below %.0f%%)", ErrUnhealthy,
				now, was, 100*p.MinDetectionRatio)
		}
	}
	return nil
}

// Options configure an Executor. Dir and Verifier (or Keys) are required,
// and Swapper and Health before Run (here or through Attach); zero values of
// the rest take the defaults given.
type Options struct {
	// Dir is the data directory (created if missing).
	Dir string
	// DeviceID goes in every JobStatus and, with Token, in HTTP basic
	// credentials for artifact downloads.
	DeviceID string
	Token    string
	// Keys are the pinned public keys; Verifier, when set, is used instead.
	Keys     manifest.KeySet
	Verifier Verifier
	Reporter Reporter // nil: transitions are only logged
	Swapper  Swapper
	Health   Health
	// Fit checks the model's signature; nil means YOLOFit{}.
	Fit Fitter
	// Open opens an engine; nil means backend.Open with "auto".
	Open          models.Opener
	EngineOptions models.Options
	// BaseURL resolves artifact URLs that are relative (fleetd sends
	// "/artifacts/<sha256>").
	BaseURL string
	// Downloader fetches the models; nil means one made of Client,
	// DeviceID, Token, BaseURL, MaxAttempts, RetryBase, RetryMax and
	// StallTimeout (see DownloadOptions for their defaults).
	Downloader *Downloader
	// Client makes the downloads (see DownloadOptions.Client).
	Client *http.Client
	// MaxAttempts is the most download attempts in a row without progress.
	MaxAttempts int
	// RetryBase and RetryMax bound the backoff between attempts.
	RetryBase, RetryMax time.Duration
	// StallTimeout abandons an attempt that receives nothing for this long.
	StallTimeout time.Duration
	// ProgressInterval is the least time between two downloading reports; default 1 s.
	ProgressInterval time.Duration
	// SmokeBudget is the most the reference frame may take; default 10 s.
	SmokeBudget time.Duration
	// HealthWindow applies to commands without HealthWindowS; default 60 s.
	HealthWindow time.Duration
	Policy       HealthPolicy
	// Shadow is the pipeline's frame tap a shadow phase attaches its
	// runner to; nil: commands with a shadow phase fail as unsupported.
	Shadow *shadow.Hub
	// ShadowInterval is the time between two shadow reports; default 5 s.
	ShadowInterval time.Duration
	Logger         *slog.Logger
	// Now is the clock for deadlines and report times; nil means time.Now.
	Now func() time.Time
}

// Executor runs update jobs one at a time. It is safe for concurrent use.
type Executor struct {
	opts   Options
	log    *slog.Logger
	dl     *Downloader
	verify Verifier
	wake   chan struct{}

	// rmu orders reports: Handle holds it from queueing a job to reporting
	// it queued, so Run cannot report the job's next state first.
	rmu sync.Mutex

	mu      sync.Mutex
	st      *state
	pending []api.JobStatus // reports found at open (a trial rolled back), sent by Run
}

// New opens the data directory and its state. A trial found there (the agent
// stopped during a health window) is rolled back: state.json keeps the last
// known good model as current, and Run reports the job as rolled_back.
func New(opts Options) (*Executor, error) {
	if opts.Dir == "" {
		return nil, errors.New("update: new: Dir is required")
	}
	if opts.Verifier == nil {
		if len(opts.Keys) == 0 {
			return nil, errors.New("update: new: no pinned keys (Keys or Verifier)")
		}
		opts.Verifier = KeySetVerifier(opts.Keys)
	}
	if opts.Fit == nil {
		opts.Fit = YOLOFit{}
	}
	if opts.Open == nil {
		opts.Open = func(ctx context.Context, b []byte, o models.Options) (models.Engine, error) {
			return backend.Open(ctx, backend.Auto, b, o)
		}
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = time.Second
	}
	if opts.SmokeBudget <= 0 {
		opts.SmokeBudget = 10 * time.Second
	}
	if opts.HealthWindow <= 0 {
		opts.HealthWindow = time.Minute
	}
	if opts.ShadowInterval <= 0 {
		opts.ShadowInterval = 5 * time.Second
	}
	opts.Policy = opts.Policy.withDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	for _, d := range []string{opts.Dir, filepath.Join(opts.Dir, "models"), filepath.Join(opts.Dir, "staging")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("update: new: %w", err)
		}
	}
	x := &Executor{opts: opts, log: opts.Logger, verify: opts.Verifier, wake: make(chan struct{}, 1)}
	x.dl = opts.Downloader
	if x.dl == nil {
		x.dl = NewDownloader(DownloadOptions{Client: opts.Client, DeviceID: opts.DeviceID, Token: opts.Token, BaseURL: opts.BaseURL,
			MaxAttempts: opts.MaxAttempts, RetryBase: opts.RetryBase, RetryMax: opts.RetryMax, StallTimeout: opts.StallTimeout,
			Logger: opts.Logger})
	}
	st, err := loadState(x.statePath())
	if err != nil {
		return nil, err
	}
	x.st = st
	x.logInterruptedShadow()
	if t := st.Trial; t != nil {
		reason := fmt.Sprintf("%v: model %s %s (%s) rolled back to the last known good", ErrRestarted, t.Model.Name, t.Model.Version, short(t.Model.SHA256))
		st.Trial = nil
		st.dequeue(t.JobID)
		st.record(JobRecord{JobID: t.JobID, State: api.JobRolledBack, Reason: reason})
		if err := saveState(x.statePath(), st); err != nil {
			return nil, err
		}
		if !x.isKept(t.Model.SHA256) {
			os.Remove(x.modelPath(t.Model.SHA256))
		}
		x.log.Warn("update: rolled back a trial left by a restart", "job_id", t.JobID, "sha256", t.Model.SHA256)
		x.pending = append(x.pending, api.JobStatus{JobID: t.JobID, State: api.JobRolledBack, Reason: reason})
	}
	return x, nil
}

func (x *Executor) statePath() string { return filepath.Join(x.opts.Dir, "state.json") }
func (x *Executor) modelPath(sum string) string {
	return filepath.Join(x.opts.Dir, "models", sum+".tflite")
}
func (x *Executor) partPath(sum string) string {
	return filepath.Join(x.opts.Dir, "staging", sum+".part")
}

// isKept says whether a model file is current or previous; x.mu must be held
// or the state not yet shared.
func (x *Executor) isKept(sum string) bool {
	for _, m := range []*Model{x.st.Current, x.st.Previous} {
		if m != nil && m.SHA256 == sum {
			return true
		}
	}
	return false
}

func shortModel(m *Model) string {
	if m == nil {
		return "none"
	}
	return short(m.SHA256)
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// Current returns the model the agent should run (the last known good one)
// and the path of its file; ok is false before any model was installed or
// seeded, and the agent then runs the model of its configuration.
func (x *Executor) Current() (m Model, path string, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.st.Current == nil {
		return Model{}, "", false
	}
	return *x.st.Current, x.modelPath(x.st.Current.SHA256), true
}

// Previous returns the model a rollback would go back to.
func (x *Executor) Previous() (m Model, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.st.Previous == nil {
		return Model{}, false
	}
	return *x.st.Previous, true
}

// Job returns the last recorded state of a job.
func (x *Executor) Job(id string) (JobRecord, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.st.job(id)
}

// Seed adopts the model file the agent was configured with as the current
// model when the data directory has none, so that a later update has a last
// known good model to return to after a reboot. It does nothing when a
// current model is already recorded.
func (x *Executor) Seed(ctx context.Context, path, name, version string) error {
	x.mu.Lock()
	has := x.st.Current != nil
	x.mu.Unlock()
	if has {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("update: seed: %w", err)
	}
	sum := sha256.Sum256(b)
	hexSum := hex.EncodeToString(sum[:])
	if err := atomicfile.WriteFile(x.modelPath(hexSum), b, 0o644); err != nil {
		return fmt.Errorf("update: seed: %w", err)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.st.Current != nil {
		return nil
	}
	x.st.Current = &Model{SHA256: hexSum, Size: int64(len(b)), Name: name, Version: version}
	if err := saveState(x.statePath(), x.st); err != nil {
		x.st.Current = nil
		return fmt.Errorf("update: seed: %w", err)
	}
	return nil
}

// Handle accepts a command: it persists it and queues it for Run, and
// reports queued. A job id seen before is not run again (nil error); if
// that job has ended, its final state is reported again, for a fleet that
// resends jobs whose outcome it missed.
func (x *Executor) Handle(ctx context.Context, c api.Command) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("update: handle: %w", err)
	}
	x.rmu.Lock()
	defer x.rmu.Unlock()
	x.mu.Lock()
	if rec, seen := x.st.job(c.JobID); seen {
		x.mu.Unlock()
		x.log.Info("update: duplicate job ignored", "job_id", c.JobID, "state", rec.State)
		if terminal(rec.State) {
			// The fleet resends jobs it has no final state for: tell it again.
			x.reportLocked(ctx, api.JobStatus{JobID: rec.JobID, State: rec.State, Reason: rec.Reason, Shadow: x.shadowReport(rec.JobID)})
		}
		return nil
	}
	x.st.Queue = append(x.st.Queue, c)
	x.st.record(JobRecord{JobID: c.JobID, State: api.JobQueued})
	if err := saveState(x.statePath(), x.st); err != nil {
		x.st.Queue = x.st.Queue[:len(x.st.Queue)-1]
		x.st.Jobs = x.st.Jobs[:len(x.st.Jobs)-1]
		x.mu.Unlock()
		return fmt.Errorf("update: handle: %w", err)
	}
	x.mu.Unlock()
	x.reportLocked(ctx, api.JobStatus{JobID: c.JobID, State: api.JobQueued})
	select {
	case x.wake <- struct{}{}:
	default:
	}
	return nil
}

// Attach sets the Swapper and Health, for an agent that opens its detector
// only after New (it asks Current which model to open). Call it before Run.
func (x *Executor) Attach(s Swapper, h Health) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.opts.Swapper, x.opts.Health = s, h
}

// Run processes queued jobs, one at a time and in arrival order, until ctx
// is done. Jobs queued before a restart run again; a download they had
// started resumes.
func (x *Executor) Run(ctx context.Context) error {
	x.mu.Lock()
	if x.opts.Swapper == nil || x.opts.Health == nil {
		x.mu.Unlock()
		return errors.New("update: run: no Swapper and Health (Options or Attach)")
	}
	pending := x.pending
	x.pending = nil
	x.mu.Unlock()
	for _, s := range pending {
		x.report(ctx, s)
	}
	for {
		x.mu.Lock()
		var next *api.Command
		if len(x.st.Queue) > 0 {
			c := x.st.Queue[0]
			next = &c
		}
		x.mu.Unlock()
		if next == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-x.wake:
				continue
			}
		}
		state, err := x.run(ctx, *next)
		if ctx.Err() != nil {
			// Stopping: the job stays queued and runs again on the next start.
			return nil
		}
		rec := JobRecord{JobID: next.JobID, State: state}
		if err != nil {
			rec.Reason = err.Error()
		}
		x.mu.Lock()
		x.st.dequeue(next.JobID)
		x.st.record(rec)
		serr := saveState(x.statePath(), x.st)
		x.mu.Unlock()
		if serr != nil {
			x.log.Error("update: save state", "job_id", next.JobID, "err", serr)
		}
		end := api.JobStatus{JobID: rec.JobID, State: rec.State, Reason: rec.Reason, Shadow: x.shadowReport(rec.JobID)}
		if end.Shadow != nil {
			x.reportUntilSent(ctx, end)
		} else {
			x.report(ctx, end)
		}
		if err != nil {
			x.log.Warn("update: job ended", "job_id", rec.JobID, "state", rec.State, "reason", rec.Reason)
		} else {
			x.log.Info("update: job ended", "job_id", rec.JobID, "state", rec.State)
		}
	}
}

func terminal(state string) bool {
	return state == api.JobSucceeded || state == api.JobFailed || state == api.JobRolledBack
}

func (x *Executor) report(ctx context.Context, s api.JobStatus) {
	x.rmu.Lock()
	defer x.rmu.Unlock()
	x.reportLocked(ctx, s)
}

// reportLocked is report with x.rmu held.
func (x *Executor) reportLocked(ctx context.Context, s api.JobStatus) {
	s.DeviceID = x.opts.DeviceID
	s.Time = x.opts.Now().UnixMilli()
	if x.opts.Reporter == nil {
		return
	}
	if err := x.opts.Reporter.Report(ctx, s); err != nil {
		x.log.Warn("update: report job status", "job_id", s.JobID, "state", s.State, "err", err)
	}
}

func (x *Executor) setState(ctx context.Context, job, st string) {
	x.mu.Lock()
	x.st.record(JobRecord{JobID: job, State: st})
	x.mu.Unlock()
	x.report(ctx, api.JobStatus{JobID: job, State: st})
}

// run executes one job and returns its final state and, unless it
// succeeded, the reason.
func (x *Executor) run(ctx context.Context, c api.Command) (string, error) {
	jctx := ctx
	if c.DeadlineMs > 0 {
		dl := time.UnixMilli(c.DeadlineMs)
		if !x.opts.Now().Before(dl) {
			return api.JobFailed, fmt.Errorf("%w: deadline %s", ErrDeadline, dl.UTC().Format(time.RFC3339))
		}
		var cancel context.CancelFunc
		jctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	var (
		state string
		err   error
	)
	switch c.Kind {
	case api.CommandModelUpdate:
		state, err = x.update(ctx, jctx, c)
	case api.CommandRollback:
		state, err = x.rollback(jctx, c)
	default:
		return api.JobFailed, fmt.Errorf("%w: %s (this executor updates models)", ErrUnsupported, c.Kind)
	}
	if err != nil && ctx.Err() == nil && errors.Is(jctx.Err(), context.DeadlineExceeded) && !errors.Is(err, ErrUnhealthy) {
		err = fmt.Errorf("%w: %v", ErrDeadline, err)
	}
	return state, err
}

// modelJob is one model update on its way through the phases of update.
type modelJob struct {
	c     api.Command
	m     *manifest.Manifest // verified; with the model's own labels once read
	model Model              // as state.json will record it
	fetch Fetch
	data  []byte
	// resumed is set when the download started from an earlier partial file.
	resumed bool
}

// update installs a model: check, download, verify, stage, smoke test, swap,
// health window. jctx carries the job's deadline, which bounds everything
// before the swap; the health window runs under ctx.
func (x *Executor) update(ctx, jctx context.Context, c api.Command) (string, error) {
	j, err := x.checkCommand(c)
	if err != nil {
		return api.JobFailed, err
	}
	if err := x.shadowIfCurrent(jctx, j); err != nil {
		return api.JobFailed, err
	}
	if done, err := x.adoptIfCurrent(j); done {
		if err != nil {
			return api.JobFailed, err
		}
		return api.JobSucceeded, nil
	}
	if err := x.download(jctx, j); err != nil {
		return api.JobFailed, err
	}
	if err := x.verifyModel(jctx, j); err != nil {
		return api.JobFailed, err
	}
	if c.Shadow != nil {
		// On a failure the verified download stays in staging: an
		// operator's accept (a new job for the same bytes) then needs no
		// download; the next committed update's clean-up removes it.
		if err := x.shadowPhase(jctx, j); err != nil {
			return api.JobFailed, err
		}
	}
	x.setState(jctx, c.JobID, api.JobInstalling)
	if err := stage(j.fetch.Part, x.modelPath(j.m.SHA256)); err != nil {
		return api.JobFailed, err
	}
	os.Remove(j.fetch.etagPath())
	old, before, err := x.swapIn(jctx, j)
	if err != nil {
		return api.JobFailed, err
	}
	return x.healthWindow(ctx, j, old, before)
}

// checkCommand verifies the command's signed manifest before anything is
// downloaded.
func (x *Executor) checkCommand(c api.Command) (*modelJob, error) {
	a := c.Artifact
	if a.Kind != manifest.KindModel {
		return nil, fmt.Errorf("%w: artifact kind %q", ErrUnsupported, a.Kind)
	}
	m, err := x.verify.Verify(a.Manifest, a.Sig, a.KeyID)
	if err != nil {
		return nil, err
	}
	if m.Kind != manifest.KindModel {
		return nil, fmt.Errorf("%w: the signed manifest is for a %s", ErrUnsupported, m.Kind)
	}
	if a.SHA256 != m.SHA256 || a.Size != m.Size {
		return nil, fmt.Errorf("%w: the command names %s (%d bytes), the signed manifest %s (%d bytes)",
			ErrMismatch, short(a.SHA256), a.Size, short(m.SHA256), m.Size)
	}
	part := x.partPath(m.SHA256)
	return &modelJob{c: c, m: m,
		model: Model{SHA256: m.SHA256, Size: m.Size, Name: m.Name, Version: m.Version, Manifest: a.Manifest, Sig: a.Sig, KeyID: a.KeyID},
		fetch: Fetch{URL: a.URL, Part: part, SHA256: m.SHA256, Size: m.Size},
	}, nil
}

// Renamer is a Swapper that can take a new manifest for the model it serves
// without a swap (Serving is one).
type Renamer interface {
	Rename(m *manifest.Manifest) error
}

// adoptIfCurrent handles a job for the bytes already current: nothing to
// download or swap, but the job's name and version (a model re-released
// under a new name or version) are recorded and served from now on, so that
// state and telemetry name what the rollout installed. done is false when
// the job installs other bytes.
func (x *Executor) adoptIfCurrent(j *modelJob) (done bool, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	cur := x.st.Current
	if cur == nil || cur.SHA256 != j.m.SHA256 {
		return false, nil
	}
	if cur.Name == j.model.Name && cur.Version == j.model.Version {
		x.log.Info("update: model already current", "job_id", j.c.JobID, "sha256", j.m.SHA256)
		return true, nil
	}
	was := *cur
	x.st.Current = &j.model
	if err := saveState(x.statePath(), x.st); err != nil {
		x.st.Current = &was
		return true, err
	}
	x.log.Info("update: model already current; taking the job's name and version", "job_id", j.c.JobID, "sha256", j.m.SHA256,
		"name", j.model.Name, "version", j.model.Version, "was_name", was.Name, "was_version", was.Version)
	if r, ok := x.opts.Swapper.(Renamer); ok {
		m := j.m
		if b, err := os.ReadFile(x.modelPath(j.m.SHA256)); err == nil {
			m = withLabels(m, b)
		}
		if err := r.Rename(m); err != nil {
			return true, fmt.Errorf("update: rename: %w", err)
		}
	}
	return true, nil
}

// download fetches the artifact into staging, reporting progress.
func (x *Executor) download(ctx context.Context, j *modelJob) error {
	x.setState(ctx, j.c.JobID, api.JobDownloading)
	th := &throttle{interval: x.opts.ProgressInterval, fn: func(p float64) {
		x.report(ctx, api.JobStatus{JobID: j.c.JobID, State: api.JobDownloading, Progress: p})
	}}
	have := fileSize(j.fetch.Part)
	j.resumed = j.resumed || have > 0
	th.update(float64(have) / float64(j.m.Size))
	j.fetch.Progress = func(have int64) { th.update(float64(have) / float64(j.m.Size)) }
	if err := x.dl.Download(ctx, j.fetch); err != nil {
		if IsPermanent(err) {
			j.fetch.Discard()
		} // else keep the partial file: a later job for this artifact resumes it
		return err
	}
	return nil
}

// verifyModel checks the download against the signed manifest (once more
// from scratch when a resumed prefix is what is wrong), then its tensors
// against the manifest and the pipeline.
func (x *Executor) verifyModel(ctx context.Context, j *modelJob) error {
	x.setState(ctx, j.c.JobID, api.JobVerifying)
	err := x.readDownload(j)
	if err != nil && j.resumed && errors.Is(err, ErrMismatch) {
		// The prefix from an earlier run may be what is wrong (a crash can
		// leave garbage past the last fsync): once more from scratch.
		x.log.Warn("update: resumed download does not match; downloading again from the start", "job_id", j.c.JobID, "err", err)
		os.Remove(j.fetch.Part)
		if err := x.download(ctx, j); err != nil {
			return err
		}
		x.setState(ctx, j.c.JobID, api.JobVerifying)
		err = x.readDownload(j)
	}
	if err == nil {
		err = x.fits(j)
	}
	if err != nil {
		j.fetch.Discard()
		return err
	}
	j.m = withLabels(j.m, j.data)
	return nil
}

// readDownload reads the download and checks its sha256 and size.
func (x *Executor) readDownload(j *modelJob) error {
	data, sum, err := readSum(j.fetch.Part)
	if err != nil {
		return fmt.Errorf("update: verify: %w", err)
	}
	j.data = data
	return j.m.Check(sum, int64(len(data)))
}

// fits checks the model's tensors against its manifest and the pipeline.
func (x *Executor) fits(j *modelJob) error {
	ins, outs, err := signature(j.data)
	if err == nil {
		err = sameSignature(j.m, ins, outs)
	}
	if err == nil {
		err = x.opts.Fit.Fits(ins, outs)
		if err != nil && !errors.Is(err, ErrNoFit) {
			err = fmt.Errorf("%w: %v", ErrNoFit, err)
		}
	}
	return err
}

// discard removes an installed model file unless it is current or previous.
func (x *Executor) discard(sum string) {
	x.mu.Lock()
	kept := x.isKept(sum)
	x.mu.Unlock()
	if !kept {
		os.Remove(x.modelPath(sum))
	}
}

// swapIn smoke-tests the staged model, records it on trial and swaps it in.
// It returns the engine it replaced and the health figures before the swap.
func (x *Executor) swapIn(ctx context.Context, j *modelJob) (old models.Engine, before Stats, err error) {
	sum := j.m.SHA256
	eng, err := x.opts.Open(ctx, j.data, x.opts.EngineOptions)
	if err != nil {
		x.discard(sum)
		return nil, Stats{}, fmt.Errorf("%w: open engine: %v", ErrSmoke, err)
	}
	took, err := smoke(ctx, eng, j.m, x.opts.SmokeBudget)
	if err != nil {
		eng.Close()
		x.discard(sum)
		return nil, Stats{}, err
	}
	x.log.Info("update: smoke test passed", "job_id", j.c.JobID, "sha256", sum, "reference_ms", took.Milliseconds())

	x.mu.Lock()
	x.st.Trial = &trial{JobID: j.c.JobID, Model: j.model}
	err = saveState(x.statePath(), x.st)
	if err != nil {
		x.st.Trial = nil
	}
	x.mu.Unlock()
	if err != nil {
		eng.Close()
		x.discard(sum)
		return nil, Stats{}, err
	}
	before = x.opts.Health.Mark()
	old, err = x.opts.Swapper.Swap(ctx, eng, j.m)
	if err != nil {
		eng.Close()
		x.endTrial(j.c.JobID, nil)
		x.discard(sum)
		return nil, Stats{}, fmt.Errorf("update: swap: %w", err)
	}
	x.log.Info("update: swapped in", "job_id", j.c.JobID, "name", j.m.Name, "version", j.m.Version, "sha256", sum)
	return old, before, nil
}

// healthWindow watches the model on trial, then commits it, or swaps old
// back and reports rolled_back.
func (x *Executor) healthWindow(ctx context.Context, j *modelJob, old models.Engine, before Stats) (string, error) {
	x.setState(ctx, j.c.JobID, api.JobHealthCheck)
	window := x.opts.HealthWindow
	if j.c.HealthWindowS > 0 {
		window = time.Duration(j.c.HealthWindowS * float64(time.Second))
	}
	if err := x.watch(ctx, window, before); err != nil {
		if ctx.Err() != nil {
			// The agent is stopping with the model on trial: state.json
			// still says trial, so the next start rolls it back.
			return api.JobFailed, err
		}
		if old == nil {
			return api.JobFailed, fmt.Errorf("%v; and there is no old engine to swap back (the next start runs the last known good)", err)
		}
		back, serr := x.opts.Swapper.Swap(context.WithoutCancel(ctx), old, x.currentManifest())
		if serr != nil {
			// The new engine keeps serving; the restart that this error
			// leads to rolls the trial back from state.json.
			return api.JobFailed, fmt.Errorf("%v; and swapping the old model back failed: %w", err, serr)
		}
		back.Close()
		x.endTrial(j.c.JobID, nil)
		x.discard(j.m.SHA256)
		return api.JobRolledBack, err
	}
	if err := x.endTrial(j.c.JobID, &j.model); err != nil {
		return api.JobFailed, err
	}
	if old != nil {
		old.Close()
	}
	x.gc()
	return api.JobSucceeded, nil
}

// watch waits out the health window, failing early once errors pass the
// bound, and judges the window against before.
func (x *Executor) watch(ctx context.Context, window time.Duration, before Stats) error {
	pol := x.opts.Policy
	tick := time.NewTicker(max(min(window/10, time.Second), 10*time.Millisecond))
	defer tick.Stop()
	end := time.NewTimer(window)
	defer end.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := pol.judgeErrors(x.opts.Health.Peek()); err != nil {
				x.opts.Health.Mark()
				return err
			}
		case <-end.C:
			return pol.judge(before, x.opts.Health.Mark())
		}
	}
}

// endTrial clears the trial; with committed, that model becomes current and
// the current one previous (the last known good to return to).
func (x *Executor) endTrial(jobID string, committed *Model) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	prevCur, prevPrev := x.st.Current, x.st.Previous
	x.st.Trial = nil
	if committed != nil {
		from := ""
		if x.st.Current != nil {
			from = x.st.Current.SHA256
		}
		x.st.record(JobRecord{JobID: jobID, State: api.JobHealthCheck, From: from, To: committed.SHA256})
		x.st.Previous, x.st.Current = x.st.Current, committed
	}
	if err := saveState(x.statePath(), x.st); err != nil {
		x.st.Current, x.st.Previous = prevCur, prevPrev
		return err
	}
	return nil
}

// currentManifest parses the current model's signed manifest (already
// verified when it was installed); nil when it has none.
func (x *Executor) currentManifest() *manifest.Manifest {
	x.mu.Lock()
	defer x.mu.Unlock()
	return modelManifest(x.st.Current)
}

// Signed parses the model's signed manifest (verified when the model was
// installed); nil for a model adopted by Seed.
func (m Model) Signed() *manifest.Manifest { return modelManifest(&m) }

// Labels are the class names of a model: its manifest's, else those embedded
// in the file (Ultralytics metadata), else none.
func Labels(m *manifest.Manifest, data []byte) []string {
	if m != nil && len(m.Labels) > 0 {
		return m.Labels
	}
	l, _, _ := meta.Labels("", data)
	return l
}

// withLabels returns m, or a copy of it carrying the labels embedded in the
// model when the manifest names none, for the detector that runs it.
func withLabels(m *manifest.Manifest, data []byte) *manifest.Manifest {
	if len(m.Labels) > 0 {
		return m
	}
	l := Labels(nil, data)
	if len(l) == 0 {
		return m
	}
	c := *m
	c.Labels = l
	return &c
}

func modelManifest(m *Model) *manifest.Manifest {
	if m == nil || len(m.Manifest) == 0 {
		return nil
	}
	man, err := manifest.Parse(m.Manifest)
	if err != nil {
		return nil
	}
	return man
}

// gc removes model files that are neither current, previous nor on trial,
// and partial downloads that no queued job will resume.
func (x *Executor) gc() {
	x.mu.Lock()
	defer x.mu.Unlock()
	files, _ := filepath.Glob(filepath.Join(x.opts.Dir, "models", "*.tflite"))
	for _, f := range files {
		sum := strings.TrimSuffix(filepath.Base(f), ".tflite")
		if !x.isKept(sum) && (x.st.Trial == nil || x.st.Trial.Model.SHA256 != sum) {
			os.Remove(f)
		}
	}
	queued := map[string]bool{}
	for _, c := range x.st.Queue {
		if c.Artifact != nil {
			queued[c.Artifact.SHA256] = true
		}
	}
	staged, _ := filepath.Glob(filepath.Join(x.opts.Dir, "staging", "*"))
	for _, f := range staged {
		sum, _, _ := strings.Cut(filepath.Base(f), ".")
		if !queued[sum] {
			os.Remove(f)
		}
	}
}

// RollbackSuffix ends the id of a rollback job that undoes the job whose id
// precedes it (fleet/rollout names them so).
const RollbackSuffix = "-rb"

// rollback returns to the previous model: the fleet's answer to a rollout
// that went wrong. A job id "<id>-rb" undoes job <id> only: when that job
// did not install its model here, there is nothing to undo and the
// rollback succeeds without a swap (and <id>, if it comes later, is not
// run); when the model it installed is no longer current, the rollback
// fails. Any other rollback job returns to the previous model.
func (x *Executor) rollback(ctx context.Context, c api.Command) (string, error) {
	x.mu.Lock()
	prev, cur := x.st.Previous, x.st.Current
	if base, ok := strings.CutSuffix(c.JobID, RollbackSuffix); ok && base != "" {
		rec, seen := x.st.job(base)
		switch {
		case !seen:
			x.st.record(JobRecord{JobID: base, State: api.JobFailed, Reason: "cancelled by rollback job " + c.JobID})
			err := saveState(x.statePath(), x.st)
			x.mu.Unlock()
			if err != nil {
				return api.JobFailed, err
			}
			x.log.Info("update: rollback of a job never run here: nothing to undo", "job_id", c.JobID, "undo_job_id", base)
			return api.JobSucceeded, nil
		case rec.To == "":
			x.mu.Unlock()
			x.log.Info("update: rollback of a job that installed nothing: nothing to undo", "job_id", c.JobID,
				"undo_job_id", base, "undo_job_state", rec.State)
			return api.JobSucceeded, nil
		case cur != nil && cur.SHA256 == rec.From:
			x.mu.Unlock()
			x.log.Info("update: rollback: the model before the job is already current", "job_id", c.JobID, "undo_job_id", base)
			return api.JobSucceeded, nil
		case cur == nil || cur.SHA256 != rec.To || prev == nil || prev.SHA256 != rec.From:
			x.mu.Unlock()
			return api.JobFailed, fmt.Errorf("update: rollback: job %s installed %s over %s, but the current model is %s and the previous %s",
				base, short(rec.To), short(rec.From), shortModel(cur), shortModel(prev))
		}
	}
	x.mu.Unlock()
	if prev == nil {
		return api.JobFailed, ErrNoPrevious
	}
	x.setState(ctx, c.JobID, api.JobInstalling)
	data, sum, err := readSum(x.modelPath(prev.SHA256))
	if err != nil {
		return api.JobFailed, fmt.Errorf("update: rollback: %w", err)
	}
	if sum != prev.SHA256 {
		return api.JobFailed, fmt.Errorf("update: rollback: %w: the previous model's file has sha256 %s, recorded %s", ErrMismatch, short(sum), short(prev.SHA256))
	}
	m := modelManifest(prev)
	if m != nil {
		m = withLabels(m, data)
	}
	eng, err := x.opts.Open(ctx, data, x.opts.EngineOptions)
	if err != nil {
		return api.JobFailed, fmt.Errorf("update: rollback: %w: open engine: %v", ErrSmoke, err)
	}
	if _, err := smoke(ctx, eng, m, x.opts.SmokeBudget); err != nil {
		eng.Close()
		return api.JobFailed, fmt.Errorf("update: rollback: %w", err)
	}
	old, err := x.opts.Swapper.Swap(ctx, eng, m)
	if err != nil {
		eng.Close()
		return api.JobFailed, fmt.Errorf("update: rollback: swap: %w", err)
	}
	x.mu.Lock()
	x.st.Current, x.st.Previous = prev, cur
	err = saveState(x.statePath(), x.st)
	x.mu.Unlock()
	if old != nil {
		old.Close()
	}
	if err != nil {
		return api.JobFailed, err
	}
	return api.JobSucceeded, nil
}

// readSum reads a file and its sha256.
func readSum(path string) ([]byte, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	h := sha256.New()
	b, err := io.ReadAll(io.TeeReader(f, h))
	if err != nil {
		return nil, "", err
	}
	return b, hex.EncodeToString(h.Sum(nil)), nil
}

// stage moves a verified download into models/ durably.
func stage(part, dst string) error {
	if err := os.Rename(part, dst); err != nil {
		return fmt.Errorf("update: stage: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("update: stage: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(part))
}
