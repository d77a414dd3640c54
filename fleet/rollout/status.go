package rollout

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"edgefleet/fleet/api"
)

// HandleJobStatus records a device's job report; fleetd's ingest calls it
// for every api.JobStatus. Reports for unknown jobs return ErrNotFound;
// reports after a job ended are ignored, and so are stale ones (see
// staleReport): reports of one device may arrive out of order (handled
// concurrently, or by two replicas), and an earlier phase applied after a
// later one would leave the job behind its device.
func (e *Engine) HandleJobStatus(_ context.Context, st api.JobStatus) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if !validJobState(st.State) {
		return fmt.Errorf("rollout: job status: unknown state %q", st.State)
	}
	ref, ok := e.jobs[st.JobID]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, st.JobID)
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
		if staleReport(j.Rollback, st.State) {
			e.ignoreStaleLocked(st, j.Rollback)
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
	if staleReport(j.State, st.State) || staleShadow(j, st) {
		e.ignoreStaleLocked(st, j.State)
		return nil
	}
	if st.Shadow != nil {
		if err := st.Shadow.Validate(); err != nil {
			return fmt.Errorf("rollout: job status: %s: shadow: %w", st.JobID, err)
		}
		if fail := e.recordShadowLocked(r, j, st.Shadow, now); fail != "" {
			st.State, st.Reason = api.JobFailed, fail
		}
		if st.Shadow.Final {
			e.poke() // the gate: written, and acted on, at the next step
		} // periodic ones are written at the next tick, however many devices send them
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

// phaseRank orders the states of a job that has not ended: the engine's
// own pending and dispatched, then the device's phases (api.JobPhase).
// Final states are not compared: they end the job whatever came before.
func phaseRank(s string) int {
	switch s {
	case JobPending:
		return -2
	case JobDispatched:
		return -1
	}
	return api.JobPhase(s)
}

// staleReport reports whether a report of state got, for a job (or rollback
// job) now in state cur and not ended, is older than what was applied: an
// earlier phase than cur's. A final report is never stale. (An agent that
// restarts mid-job goes through its phases again; its job then shows the
// furthest phase reached until the device passes it, which is harmless.)
func staleReport(cur, got string) bool {
	if jobFinal(got) {
		return false
	}
	return phaseRank(got) < phaseRank(cur)
}

// staleShadow reports whether st is a periodic shadow report that arrived
// after the phase's final one: applying it would replace the final figures.
func staleShadow(j *Job, st api.JobStatus) bool {
	return st.Shadow != nil && !st.Shadow.Final && j.Shadow != nil && j.Shadow.Final && j.Shadow.AcceptedBy == ""
}

// ignoreStaleLocked counts and logs a report that came after a later one.
func (e *Engine) ignoreStaleLocked(st api.JobStatus, cur string) {
	e.m.stale.Inc()
	e.log.Debug("stale job report ignored", "device_id", st.DeviceID, "job_id", st.JobID, "state", st.State, "current", cur)
}

// validJobState reports whether a device may report state s.
func validJobState(s string) bool { return api.JobPhase(s) > 0 }

// afterFinalLocked applies the consequences of a job that just ended.
func (e *Engine) afterFinalLocked(r *Rollout, j *Job, now time.Time) {
	e.m.finished.WithLabelValues(j.State).Inc()
	if wantsRollback(r, j) {
		queueRollback(j, now)
	}
	// A success can break only the rule on MinExecutions.
	if r.State.Final() || !jobFailed(j.State) && (r.Spec.MaxFailureRate == 0 || r.Spec.MinExecutions == 0) {
		return
	}
	if reason := r.overLimit(j.Wave); reason != "" {
		e.abortLocked(r, now, reason+r.shadowFailures(), ActorEngine)
	}
}

// shadowFailures says how many of the failures the shadow gate made, for
// an abort's reason ("" when none): the rollout's reason then says the
// candidate was stopped before it swapped, not that devices broke.
func (r *Rollout) shadowFailures() string {
	n := 0
	for i := range r.Jobs {
		if r.Jobs[i].shadowFailed() {
			n++
		}
	}
	if n == 0 || r.Spec.Shadow == nil {
		return ""
	}
	return fmt.Sprintf("; %d of them failed the shadow gate (agreement below min-agreement %.3f) and kept their model", n, r.Spec.Shadow.MinAgreement)
}

// overLimit says why the failures break a limit, with the wave w a job of
// which just ended, or returns "".
func (r *Rollout) overLimit(w int) string {
	rate := r.Spec.MaxFailureRate
	if rate > 0 {
		var size, ended, failed int
		for _, j := range r.waveJobs(w) {
			if j.State == JobSkipped {
				continue
			}
			size++
			if jobFinal(j.State) {
				ended++
			}
			if jobFailed(j.State) {
				failed++
			}
		}
		name := "wave " + strconv.Itoa(w)
		if w == 0 {
			name = "canary"
		}
		allowed := rate * float64(size)
		switch {
		case float64(failed) > allowed:
			return fmt.Sprintf("%s stopped: %d of its %d devices failed, more than max-failure-rate %v allows (%.4g)",
				name, failed, size, rate, allowed)
		case r.Spec.MinExecutions > 0 && ended >= r.Spec.MinExecutions && float64(failed) > rate*float64(ended):
			return fmt.Sprintf("%s stopped: %d of %d ended jobs failed (%d devices in the wave), above max-failure-rate %v",
				name, failed, ended, size, rate)
		}
	}
	failed := 0
	for _, j := range r.Jobs {
		if jobFailed(j.State) {
			failed++
		}
	}
	if limit := r.Spec.MaxFailures.Limit(len(r.Jobs)); failed > limit {
		return fmt.Sprintf("%d failures exceed max-failures %s (%d of %d devices)", failed, r.Spec.MaxFailures, limit, len(r.Jobs))
	}
	return ""
}
