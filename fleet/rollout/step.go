package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"edgefleet/fleet/api"
)

type send struct {
	r        string
	job      string
	dev      string
	cmd      api.Command
	rollback bool
	resend   bool // sent before (a restart); its state is not JobDispatched by this pass
}

// Step runs one pass of the state machine: it times out stuck jobs, aborts
// rollouts past their failure limits, starts waves whose predecessors are
// done, sends jobs to online devices, and writes the changes. Run calls it;
// tests call it directly with a fake clock.
func (e *Engine) Step(ctx context.Context) error {
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	now := e.opt.Now()
	type need struct {
		id  string
		sel map[string]string
	}
	var needs []need
	for id, r := range e.rollouts {
		e.advanceLocked(r, now)
		e.resendSilentLocked(r, now)
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
			errs = append(errs, fmt.Errorf("rollout: %s: devices: %w", n.id, err))
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

	errs = e.dispatch(ctx, sends, errs)

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if err := e.flushLocked(); err != nil {
		errs = append(errs, err)
	}
	e.m.setRollouts(e.rollouts)
	return errors.Join(errs...)
}

// dispatch sends the commands. An update whose rollout stopped running
// since it was collected (a result that arrived meanwhile broke a limit,
// or an operator paused or aborted it) is not sent: it goes back to wait.
func (e *Engine) dispatch(ctx context.Context, sends []send, errs []error) []error {
	for _, s := range sends {
		if !s.rollback && !e.stillRunning(s) {
			e.undoSend(s)
			continue
		}
		if err := e.opt.Dispatcher.Dispatch(ctx, s.dev, s.cmd); err != nil {
			errs = append(errs, fmt.Errorf("rollout: %s: dispatch %s to %s: %w", s.r, s.job, s.dev, err))
			e.m.dispatchErrors.Inc()
			e.undoSend(s)
			continue
		}
		e.m.commands.WithLabelValues(s.cmd.Kind).Inc()
	}
	return errs
}

func (e *Engine) stillRunning(s send) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.rollouts[s.r]
	return ok && !e.closed && r.State.running()
}

// advanceLocked times jobs out, enforces the failure limits and moves waves.
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
	if r.Phase() == phaseRollingBack && r.rollbacksSettled() {
		e.settleRollbackLocked(r, now)
	}
	for r.State == StatePending || r.State.running() {
		if r.State != StatePending {
			for _, j := range r.Jobs[:r.WaveEnd[r.Wave]] {
				if !jobFinal(j.State) {
					return
				}
			}
		}
		e.nextWaveLocked(r, now)
	}
}

// nextWaveLocked starts the wave after the current one, or completes r.
func (e *Engine) nextWaveLocked(r *Rollout, now time.Time) {
	from, next := r.Phase(), r.Wave+1
	if r.State == StatePending {
		next = 0
	}
	ended := ""
	if r.State != StatePending {
		p := r.Summarize().Progress[r.Wave]
		ended = fmt.Sprintf("%s ended: %d succeeded, %d failed; ", from, p.Succeeded, p.Failed)
	}
	e.dirty[r.ID] = true
	r.UpdatedAt = now
	if next >= len(r.WaveEnd) {
		s := r.Summarize()
		r.State = StateCompleted
		r.Reason = fmt.Sprintf("%d of %d devices updated, %d failed", s.Succeeded, s.Targets, s.Failed)
		r.record(now, from, string(StateCompleted), ended+r.Reason, ActorEngine)
		e.log.Info("rollout completed", "rollout_id", r.ID, "succeeded", s.Succeeded, "failed", s.Failed)
		return
	}
	r.Wave, r.State = next, StateWave
	if next == 0 {
		r.State = StateCanary
	}
	jobs := r.waveJobs(next)
	for i := range jobs {
		if jobs[i].QueuedAt.IsZero() {
			jobs[i].QueuedAt = now
		}
	}
	r.record(now, from, phaseOf(r.State, r.Wave), fmt.Sprintf("%sstarted with %d devices", ended, len(jobs)), ActorEngine)
	e.log.Info("rollout wave started", "rollout_id", r.ID, "wave", next, "devices", len(jobs))
}

// settleRollbackLocked records that every rollback job has ended.
func (e *Engine) settleRollbackLocked(r *Rollout, now time.Time) {
	var ok, failed int
	for _, j := range r.Jobs {
		switch {
		case j.Rollback == api.JobSucceeded:
			ok++
		case j.Rollback != "":
			failed++
		}
	}
	why := fmt.Sprintf("%s back on their previous version, %s failed", count(ok, "device"), count(failed, "rollback"))
	if ok+failed == 0 {
		why = "nothing was rolled back: no job ended on the new version"
	}
	r.record(now, r.Phase(), phaseRolledBack, why, ActorEngine)
	r.UpdatedAt = now
	e.dirty[r.ID] = true
}

func (e *Engine) wantsDevicesLocked(r *Rollout) bool {
	running := r.State.running()
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

// resendSilentLocked marks for resending the sent, unfinished jobs of a
// running rollout whose device has said nothing for Options.Silence since
// the job was last sent or reported on.
func (e *Engine) resendSilentLocked(r *Rollout, now time.Time) {
	if !r.State.running() {
		return
	}
	for _, j := range r.Jobs {
		if j.Wave > r.Wave || j.State == JobPending || jobFinal(j.State) {
			continue
		}
		last := j.UpdatedAt
		if t := e.lastSent[j.JobID]; t.After(last) {
			last = t
		}
		if now.Sub(last) >= e.opt.Silence {
			e.resend[j.JobID] = true
		}
	}
}

// collectLocked marks the jobs to send to online devices as dispatched.
func (e *Engine) collectLocked(r *Rollout, online map[string]bool, now time.Time, out []send) []send {
	running := r.State.running()
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
			e.lastSent[j.JobID] = now
			s := send{r: r.ID, job: j.JobID, dev: j.DeviceID, resend: j.State != JobPending}
			if j.State == JobPending {
				j.State, j.SentAt, j.UpdatedAt = JobDispatched, now, now
			}
			art := a
			s.cmd = api.Command{JobID: j.JobID, Kind: kind, Artifact: &art,
				DeadlineMs: j.QueuedAt.Add(r.Spec.JobTimeout).UnixMilli(), HealthWindowS: r.Spec.HealthWindow.Seconds()}
			if r.Spec.Shadow != nil && (j.Shadow == nil || j.Shadow.AcceptedBy == "") {
				sh := *r.Spec.Shadow
				s.cmd.Shadow = &sh
			}
			out = append(out, s)
			e.dirty[r.ID] = true
		}
		rb := RollbackJobID(j.JobID)
		if j.Rollback == JobPending || e.resend[rb] && j.Rollback != "" && !jobFinal(j.Rollback) {
			delete(e.resend, rb)
			s := send{r: r.ID, job: rb, dev: j.DeviceID, rollback: true, resend: j.Rollback != JobPending}
			if j.Rollback == JobPending {
				j.Rollback, j.RollbackAt = JobDispatched, now
			}
			s.cmd = api.Command{JobID: rb, Kind: api.CommandRollback, DeadlineMs: now.Add(r.Spec.JobTimeout).UnixMilli()}
			out = append(out, s)
			e.dirty[r.ID] = true
		}
	}
	return out
}

// undoSend puts a job that was not sent back as it was before collectLocked:
// waiting to be sent (or, if it had been sent before a restart, to be sent
// again).
func (e *Engine) undoSend(s send) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ref, ok := e.jobs[s.job]
	if !ok {
		return
	}
	j := &ref.r.Jobs[ref.i]
	switch {
	case s.resend:
		e.resend[s.job] = true
	case ref.rollback:
		if j.Rollback == JobDispatched {
			j.Rollback = JobPending
		}
	case j.State == JobDispatched:
		j.State, j.SentAt = JobPending, time.Time{}
		if ref.r.State.Final() { // it stopped between collect and dispatch: the stop cancelled the others
			cancelJob(j, e.opt.Now(), ref.r.Reason)
			e.m.finished.WithLabelValues(JobCancelled).Inc()
		}
	}
	e.dirty[ref.r.ID] = true
}
