package rollout

import (
	"context"
	"fmt"
	"time"

	"edgefleet/fleet/api"
)

// ActionKind names an operator action.
type ActionKind string

// Operator actions.
const (
	ActionPause    ActionKind = "pause"
	ActionResume   ActionKind = "resume"
	ActionAbort    ActionKind = "abort"
	ActionRollback ActionKind = "rollback"
	// ActionAccept accepts one device's failed shadow phase (Action.Device).
	ActionAccept ActionKind = "accept"
)

// Action is an operator's request on a rollout.
type Action struct {
	Kind ActionKind
	// By names the operator for the history; "" means ActorOperator.
	By string
	// Reason is recorded with the transition (for an abort, in Rollout.Reason too).
	Reason string
	// Device is the device an accept is for.
	Device string
}

// Act applies an operator action and persists it before it returns:
//   - pause stops new dispatches and wave changes;
//   - resume continues a paused rollout; jobs still waiting to be sent get
//     a fresh timeout;
//   - abort stops the rollout; devices go back as Spec.RollbackOnAbort says;
//   - rollback stops the rollout and sends every device it updated, or
//     tried to, back to its previous version;
//   - accept clears a device's failed shadow phase and sends it the
//     update again without one (see shadow.go).
func (e *Engine) Act(ctx context.Context, id string, a Action) (Summary, error) {
	var f func(r *Rollout, now time.Time, a Action) error
	switch a.Kind {
	case ActionPause:
		f = pause
	case ActionResume:
		f = resume
	case ActionAbort:
		f = e.abort
	case ActionRollback:
		f = e.rollback
	case ActionAccept:
		f = e.accept
	default:
		return Summary{}, fmt.Errorf("rollout: unknown action %q", a.Kind)
	}
	if a.By == "" {
		a.By = ActorOperator
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Summary{}, ErrClosed
	}
	r, ok := e.rollouts[id]
	if !ok {
		return Summary{}, fmt.Errorf("%w: %s %s", ErrNotFound, a.Kind, id)
	}
	now := e.opt.Now()
	if err := f(r, now, a); err != nil {
		return Summary{}, err
	}
	r.UpdatedAt = now
	e.dirty[id] = true
	if err := e.flushLocked(); err != nil {
		return Summary{}, err
	}
	e.log.Info("rollout "+string(a.Kind), "rollout_id", id, "state", r.State, "by", a.By, "device", a.Device)
	e.poke()
	return r.Summarize(), nil
}

// Pause is Act with ActionPause by an unnamed operator.
func (e *Engine) Pause(id string) (Summary, error) {
	return e.Act(context.Background(), id, Action{Kind: ActionPause})
}

// Resume is Act with ActionResume by an unnamed operator.
func (e *Engine) Resume(id string) (Summary, error) {
	return e.Act(context.Background(), id, Action{Kind: ActionResume})
}

// Abort is Act with ActionAbort by an unnamed operator.
func (e *Engine) Abort(id, reason string) (Summary, error) {
	return e.Act(context.Background(), id, Action{Kind: ActionAbort, Reason: reason})
}

// Rollback is Act with ActionRollback by an unnamed operator.
func (e *Engine) Rollback(id string) (Summary, error) {
	return e.Act(context.Background(), id, Action{Kind: ActionRollback})
}

func pause(r *Rollout, now time.Time, a Action) error {
	if r.State.Final() || r.State == StatePaused {
		return stateError(r, a)
	}
	from := r.Phase()
	r.PausedFrom, r.State = r.State, StatePaused
	r.record(now, from, string(StatePaused), orDefault(a.Reason, "paused"), a.By)
	return nil
}

func resume(r *Rollout, now time.Time, a Action) error {
	if r.State != StatePaused {
		return stateError(r, a)
	}
	from := r.Phase()
	r.State, r.PausedFrom = r.PausedFrom, ""
	for i := range r.Jobs {
		if j := &r.Jobs[i]; j.State == JobPending && !j.QueuedAt.IsZero() {
			j.QueuedAt = now
		}
	}
	r.record(now, from, phaseOf(r.State, r.Wave), orDefault(a.Reason, "resumed"), a.By)
	return nil
}

func (e *Engine) abort(r *Rollout, now time.Time, a Action) error {
	if r.State.Final() {
		return stateError(r, a)
	}
	reason := "aborted by operator"
	if a.Reason != "" {
		reason += ": " + a.Reason
	}
	e.abortLocked(r, now, reason, a.By)
	return nil
}

func (e *Engine) rollback(r *Rollout, now time.Time, a Action) error {
	if r.State == StateRolledBack {
		return stateError(r, a)
	}
	reason, from := orDefault(a.Reason, "rolled back by operator"), r.Phase()
	if r.State != StateAborted {
		// An abort's reason stays; the rollback is in the history.
		r.Reason = reason
	}
	r.State, r.PausedFrom = StateRolledBack, ""
	r.record(now, from, phaseRollingBack, reason, a.By)
	e.cancelUnsentLocked(r, now, reason)
	// Jobs in flight get theirs when they end (afterFinalLocked), so a
	// rollback cannot overtake the update it undoes.
	for i := range r.Jobs {
		if j := &r.Jobs[i]; j.State == api.JobSucceeded || failedOnDevice(j) {
			queueRollback(j, now)
		}
	}
	return nil
}

func stateError(r *Rollout, a Action) error {
	return fmt.Errorf("%w: %s %s, which is %s", ErrState, a.Kind, r.ID, r.State)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// abortLocked stops r, cancels the jobs it had not sent and queues the
// rollbacks the spec asks for.
func (e *Engine) abortLocked(r *Rollout, now time.Time, reason, by string) {
	from := r.Phase()
	r.State, r.Reason, r.PausedFrom, r.UpdatedAt = StateAborted, reason, "", now
	r.record(now, from, string(StateAborted), reason, by)
	cancelled := e.cancelUnsentLocked(r, now, reason)
	all := r.Spec.rollbackOnAbort()
	n, inFlight := 0, 0
	for i := range r.Jobs {
		j := &r.Jobs[i]
		// Jobs in flight get theirs when they end (wantsRollback).
		if failedOnDevice(j) || all && j.State == api.JobSucceeded {
			queueRollback(j, now)
			n++
		}
		if !jobFinal(j.State) {
			inFlight++
		}
	}
	if all {
		to, why := rollbackOnAbortNote(n, inFlight)
		r.record(now, string(StateAborted), to, why, ActorEngine)
	}
	e.dirty[r.ID] = true
	e.log.Warn("rollout aborted", "rollout_id", r.ID, "reason", reason, "by", by, "rollbacks", n, "in_flight", inFlight, "cancelled", cancelled)
}

// rollbackOnAbortNote is the history entry of an abort under
// rollback_on_abort, with n devices sent back and inFlight jobs that may
// earn a rollback when they end: the phase it moves to and why. With
// nothing to send back and nothing in flight it stays aborted.
func rollbackOnAbortNote(n, inFlight int) (to, why string) {
	later := ""
	if inFlight > 0 {
		later = fmt.Sprintf("; %s still in flight will get a rollback when it ends, if it needs one", count(inFlight, "job"))
	}
	switch {
	case n == 0 && inFlight == 0:
		return string(StateAborted), "rollback_on_abort: nothing to roll back: no device had been updated"
	case n == 0:
		return phaseRollingBack, "rollback_on_abort: nothing to roll back yet" + later
	}
	return phaseRollingBack, fmt.Sprintf("rollback_on_abort: %s sent back%s", count(n, "device"), later)
}

// count is "1 device", "2 devices".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// cancelUnsent ends the jobs of a stopped rollout that were still waiting
// to be sent (for their wave or their device): they never will be. It
// returns how many.
func cancelUnsent(r *Rollout, now time.Time, why string) int {
	n := 0
	for i := range r.Jobs {
		if j := &r.Jobs[i]; j.State == JobPending {
			cancelJob(j, now, why)
			n++
		}
	}
	return n
}

// cancelJob ends one unsent job of a stopped rollout.
func cancelJob(j *Job, now time.Time, why string) {
	j.State, j.Reason, j.Progress, j.UpdatedAt = JobCancelled, "not sent, the rollout stopped first: "+why, 0, now
}

// cancelUnsentLocked is cancelUnsent, counted in the finished-jobs metric.
func (e *Engine) cancelUnsentLocked(r *Rollout, now time.Time, why string) int {
	n := cancelUnsent(r, now, why)
	if n > 0 {
		e.m.finished.WithLabelValues(JobCancelled).Add(float64(n))
	}
	return n
}

// failedOnDevice reports whether a job failed in a way that may have left
// its device on the new version: it failed (and did not roll back by
// itself), or timed out after it was sent. A job that timed out waiting for
// an offline device never reached it.
// A device failed by its shadow phase kept its serving model.
func failedOnDevice(j *Job) bool {
	return j.State == api.JobFailed && !j.shadowFailed() || j.State == JobTimedOut && !j.SentAt.IsZero()
}

func queueRollback(j *Job, now time.Time) {
	if j.Rollback == "" {
		j.Rollback, j.RollbackAt = JobPending, now
	}
}

// wantsRollback reports whether a job that just ended gets a rollback
// because of what happened to its rollout while it was in flight.
func wantsRollback(r *Rollout, j *Job) bool {
	switch {
	case !r.State.Final():
		return false
	case failedOnDevice(j):
		return true
	case j.State != api.JobSucceeded:
		return false
	case r.State == StateRolledBack:
		return true
	default:
		return r.State == StateAborted && r.Spec.rollbackOnAbort()
	}
}
