package update

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"edgefleet/agent/shadow"
	"edgefleet/fleet/api"
	"edgefleet/internal/atomicfile"
	"edgefleet/models"
	"edgefleet/models/manifest"
)

// ErrShadow means the candidate's agreement with the serving model in its
// shadow phase was below the rollout's threshold (or nothing was compared).
var ErrShadow = errors.New("update: shadow evaluation failed")

// CandidateMaker builds the detector a candidate engine runs in the shadow
// phase, with the same post-processing as the model served (Serving is one).
type CandidateMaker interface {
	Candidate(eng models.Engine, m *manifest.Manifest) (models.Detector, error)
}

// maxShadowFiles bounds the final shadow reports kept in <dir>/shadow.
const maxShadowFiles = 16

func (x *Executor) shadowPath(jobID string) string {
	return filepath.Join(x.opts.Dir, "shadow", jobID+".json")
}

// shadowPhase runs the verified candidate beside the serving model for the
// spec's duration, reporting JobShadow with the measurement so far every
// ShadowInterval and the final report at the end; it fails with ErrShadow
// when the agreement is below the threshold. The final report is kept in
// <dir>/shadow/<job>.json, so the terminal status, and a resend of it after
// a lost report, carries it. A stop (ctx done) leaves the job queued and
// state.json saying shadow: the next start runs the phase again.
func (x *Executor) shadowPhase(ctx context.Context, j *modelJob) error {
	spec := *j.c.Shadow
	cm, ok := x.opts.Swapper.(CandidateMaker)
	if x.opts.Shadow == nil || !ok {
		return fmt.Errorf("%w: shadow phase: this agent has no frame tap or candidate detector", ErrUnsupported)
	}
	// The serving engine's kind and delegate, on one thread: the budget is
	// a share of one core.
	eo := x.opts.EngineOptions
	eo.Threads = 1
	eng, err := x.opts.Open(ctx, j.data, eo)
	if err != nil {
		return fmt.Errorf("%w: open engine: %v", ErrSmoke, err)
	}
	defer eng.Close()
	if _, err := smoke(ctx, eng, j.m, x.opts.SmokeBudget); err != nil {
		return err
	}
	det, err := cm.Candidate(eng, j.m)
	if err != nil {
		return fmt.Errorf("%w: candidate detector: %v", ErrSmoke, err)
	}
	if err := x.recordShadow(j.c.JobID); err != nil {
		return err
	}
	x.report(ctx, api.JobStatus{JobID: j.c.JobID, State: api.JobShadow})
	x.log.Info("update: shadow phase", "job_id", j.c.JobID, "duration_s", spec.DurationS, "min_agreement", spec.MinAgreement,
		"sample_every", spec.SampleEvery, "cpu_percent", spec.CPUPercent)

	run := shadow.NewRunner(shadow.RunnerOptions{Spec: spec, Candidate: det, Logger: x.log, Now: x.opts.Now})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); run.Run(rctx) }()
	x.opts.Shadow.Attach(run)
	defer func() {
		x.opts.Shadow.Attach(nil)
		stop()
		<-done // the candidate engine is idle before it closes
	}()
	tick := time.NewTicker(x.opts.ShadowInterval)
	defer tick.Stop()
	end := time.NewTimer(time.Duration(spec.DurationS * float64(time.Second)))
	defer end.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			rep := run.Report(false)
			x.report(ctx, api.JobStatus{JobID: j.c.JobID, State: api.JobShadow, Shadow: &rep})
		case <-end.C:
			break wait
		}
	}
	// The frame in flight still counts: a slow candidate (or machine) may
	// take longer than the phase for its first frame. It gets SmokeBudget.
	x.opts.Shadow.Attach(nil)
	run.Finish()
	grace := time.NewTimer(x.opts.SmokeBudget)
	select {
	case <-done:
	case <-grace.C:
	case <-ctx.Done():
	}
	grace.Stop()
	stop()
	<-done
	if ctx.Err() != nil {
		return ctx.Err()
	}
	final := fitPayload(run.Report(true), j.c.JobID)
	if err := x.saveShadow(j.c.JobID, &final); err != nil {
		x.log.Error("update: keep the final shadow report", "job_id", j.c.JobID, "err", err)
	}
	x.report(ctx, api.JobStatus{JobID: j.c.JobID, State: api.JobShadow, Shadow: &final})
	pass, why := shadow.Passed(final)
	x.log.Info("update: shadow phase ended", "job_id", j.c.JobID, "agreement", final.Agreement, "min_agreement", final.MinAgreement,
		"frames", final.Frames, "skipped", final.Skipped, "passed", pass)
	if !pass {
		return fmt.Errorf("%w: %s", ErrShadow, why)
	}
	return nil
}

// shadowIfCurrent runs the shadow phase of a job for the bytes already
// serving (the same network re-released under another manifest, maybe with
// other labels) before adoptIfCurrent takes its manifest: nothing is
// downloaded, but the new labels must earn their place like a new model.
func (x *Executor) shadowIfCurrent(ctx context.Context, j *modelJob) error {
	x.mu.Lock()
	cur := x.st.Current
	x.mu.Unlock()
	if j.c.Shadow == nil || cur == nil || cur.SHA256 != j.m.SHA256 {
		return nil
	}
	data, sum, err := readSum(x.modelPath(cur.SHA256))
	if err != nil {
		return fmt.Errorf("update: shadow: %w", err)
	}
	if err := j.m.Check(sum, int64(len(data))); err != nil {
		return err
	}
	j.data = data
	j.m = withLabels(j.m, data)
	return x.shadowPhase(ctx, j)
}

// recordShadow persists that the job is in its shadow phase.
func (x *Executor) recordShadow(jobID string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.st.record(JobRecord{JobID: jobID, State: api.JobShadow})
	return saveState(x.statePath(), x.st)
}

// reportUntilSent reports the terminal status of a job with a shadow report
// and, while the report fails (the broker is away), retries it in the
// background with backoff until it is sent, ctx is done or an hour has
// passed. The kept report answers a resend of the job after that.
func (x *Executor) reportUntilSent(ctx context.Context, s api.JobStatus) {
	x.rmu.Lock()
	s.DeviceID = x.opts.DeviceID
	s.Time = x.opts.Now().UnixMilli()
	rep := x.opts.Reporter
	var err error
	if rep != nil {
		err = rep.Report(ctx, s)
	}
	x.rmu.Unlock()
	if err == nil {
		return
	}
	x.log.Warn("update: report job status; retrying", "job_id", s.JobID, "state", s.State, "err", err)
	go func() {
		wait, most, giveUp := x.opts.RetryBase, x.opts.RetryMax, time.Now().Add(time.Hour)
		if wait <= 0 {
			wait = time.Second
		}
		if most <= 0 {
			most = time.Minute
		}
		for time.Now().Before(giveUp) {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if err := rep.Report(ctx, s); err == nil {
				x.log.Info("update: job status sent after retries", "job_id", s.JobID, "state", s.State)
				return
			}
			wait = min(2*wait, most)
		}
	}()
}

// logInterruptedShadow names the queued jobs whose shadow phase a stop cut
// short; Run runs them again from the start. x.mu must be held or the state
// not yet shared.
func (x *Executor) logInterruptedShadow() {
	for _, c := range x.st.Queue {
		if rec, ok := x.st.job(c.JobID); ok && rec.State == api.JobShadow {
			x.log.Warn("update: the agent stopped during this job's shadow phase; it runs again from the start", "job_id", c.JobID)
		}
	}
}

// fitPayload drops the least telling samples until the job status that
// carries the report fits api.MaxPayload.
func fitPayload(r api.ShadowReport, jobID string) api.ShadowReport {
	for {
		b, err := json.Marshal(api.JobStatus{JobID: jobID, State: api.JobShadow, Reason: strings.Repeat("x", 512), Shadow: &r})
		if err != nil || len(b) <= api.MaxPayload || len(r.Samples) == 0 {
			return r
		}
		r.Samples = r.Samples[:len(r.Samples)-1]
	}
}

// saveShadow keeps a final report durably, and only the newest few.
func (x *Executor) saveShadow(jobID string, r *api.ShadowReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(x.shadowPath(jobID)), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(x.shadowPath(jobID), b, 0o644); err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(x.opts.Dir, "shadow", "*.json"))
	if len(files) <= maxShadowFiles {
		return nil
	}
	type aged struct {
		path string
		mod  time.Time
	}
	var all []aged
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			all = append(all, aged{f, fi.ModTime()})
		}
	}
	slices.SortFunc(all, func(a, b aged) int { return a.mod.Compare(b.mod) })
	for _, a := range all[:max(len(all)-maxShadowFiles, 0)] {
		os.Remove(a.path)
	}
	return nil
}

// shadowReport is the kept final report of a job, nil when it has none.
func (x *Executor) shadowReport(jobID string) *api.ShadowReport {
	if api.ValidateID(jobID) != nil {
		return nil
	}
	b, err := os.ReadFile(x.shadowPath(jobID))
	if err != nil {
		return nil
	}
	var r api.ShadowReport
	if err := json.Unmarshal(b, &r); err != nil || r.Validate() != nil {
		return nil
	}
	return &r
}
