package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"edgefleet/fleet/api"
)

// Shadow phases (Spec.Shadow). A device in its shadow phase reports
// api.JobShadow, a running state, with a ShadowReport every few seconds and
// a final one when the phase ends. The engine keeps the latest periodic
// report and the final one of every device in the Store (SaveShadow, with
// the next flush), and a small ShadowResult in the job.
//
// The gate: a final report whose Agreement is below the spec's
// MinAgreement, or that compared no frame (its Agreement is then 1, as
// edge-agent computes F1 of no boxes), fails the job, with the numbers as
// its reason, whatever state the device reported with it (the device fails
// it too: agent/shadow.Passed); the failure counts against
// MaxFailures and MaxFailureRate as any other, so a bad candidate stops the
// canary (or the wave) before any device has swapped. A device failed by
// its shadow phase kept its serving model: no rollback is sent to it.
//
// An operator may accept a failed shadow phase (ActionAccept, with the
// device) while the rollout is running or paused: the failure no longer
// counts, the acceptance is recorded (who, when) and the job is sent again
// under a new id (the old one + "-a") without Shadow, so the device swaps at
// once — when the rollout runs (a paused one sends it on resume). A final
// rollout (aborted, completed, rolled back) sends no more update jobs, so
// accept is refused there with ErrState: start a new rollout for the device.

// ShadowRecord is one device's shadow reports in one rollout, as stored.
type ShadowRecord struct {
	RolloutID string            `json:"rollout_id"`
	DeviceID  string            `json:"device_id"`
	JobID     string            `json:"job_id"`
	Latest    *api.ShadowReport `json:"latest,omitempty"` // the last periodic report
	Final     *api.ShadowReport `json:"final,omitempty"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// merge takes a newer record's reports over r's.
func (r *ShadowRecord) merge(n *ShadowRecord) {
	r.JobID, r.UpdatedAt = n.JobID, n.UpdatedAt
	if n.Latest != nil {
		r.Latest = n.Latest
	}
	if n.Final != nil {
		r.Final = n.Final
	}
}

// mergeShadow returns the JSON of the stored record old (nil: none) with
// rec's reports over it.
func mergeShadow(old []byte, rec ShadowRecord) ([]byte, error) {
	if old != nil {
		var o ShadowRecord
		if err := json.Unmarshal(old, &o); err != nil {
			return nil, err
		}
		o.merge(&rec)
		rec = o
	}
	return json.Marshal(rec)
}

func shadowKey(rolloutID, deviceID string) string { return rolloutID + "/" + deviceID }

// recordShadowLocked keeps a report for the next flush and updates the
// job's ShadowResult. For a final report under the spec's threshold it
// returns the reason the job fails with, else "".
func (e *Engine) recordShadowLocked(r *Rollout, j *Job, rep *api.ShadowReport, now time.Time) string {
	rec := &ShadowRecord{RolloutID: r.ID, DeviceID: j.DeviceID, JobID: j.JobID, UpdatedAt: now}
	if rep.Final {
		rec.Final = rep
	} else {
		rec.Latest = rep
	}
	k := shadowKey(r.ID, j.DeviceID)
	if old, ok := e.shadow[k]; ok {
		old.merge(rec)
	} else {
		e.shadow[k] = rec
	}
	if j.Shadow == nil {
		j.Shadow = &ShadowResult{}
	}
	sh := j.Shadow
	sh.Agreement, sh.Frames, sh.UpdatedAt = rep.Agreement, rep.Frames, now
	e.dirty[r.ID] = true
	if !rep.Final {
		return ""
	}
	sh.Final = true
	if r.Spec.Shadow == nil {
		sh.Passed = true // not asked for: nothing to gate
		return ""
	}
	min := r.Spec.Shadow.MinAgreement
	// A phase that compared no frame reports agreement 1 (no boxes either
	// side) and does not pass on the device (shadow.Passed): nor here.
	sh.Passed = rep.Frames > 0 && rep.Agreement >= min
	e.m.shadow.WithLabelValues(map[bool]string{true: "passed", false: "failed"}[sh.Passed]).Inc()
	if sh.Passed {
		return ""
	}
	if rep.Frames == 0 {
		return fmt.Sprintf("shadow: compared no frame in %.0f s (%d skipped by the CPU budget); min-agreement %.3f", rep.ElapsedS, rep.Skipped, min)
	}
	return fmt.Sprintf("shadow: agreement %.3f below min-agreement %.3f (precision %.3f, recall %.3f, count ratio %.2f, %d frames)",
		rep.Agreement, min, rep.Precision, rep.Recall, rep.CountRatio, rep.Frames)
}

// flushShadowLocked writes the reports kept since the last flush.
func (e *Engine) flushShadowLocked(ctx context.Context) error {
	if len(e.shadow) == 0 {
		return nil
	}
	if err := e.store.SaveShadow(ctx, e.shadowRecordsLocked()...); err != nil {
		return err
	}
	clear(e.shadow)
	return nil
}

// shadowRecordsLocked copies the shadow reports kept for the next write.
func (e *Engine) shadowRecordsLocked() []ShadowRecord {
	recs := make([]ShadowRecord, 0, len(e.shadow))
	for _, rec := range e.shadow {
		recs = append(recs, *rec)
	}
	return recs
}

// Shadow returns the stored shadow reports of a rollout's devices (with
// those not yet written), sorted by device.
func (e *Engine) Shadow(ctx context.Context, id string) ([]ShadowRecord, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.rollouts[id]; !ok {
		return nil, fmt.Errorf("%w: shadow %s", ErrNotFound, id)
	}
	recs, err := e.store.LoadShadow(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, p := range e.shadow {
		if p.RolloutID != id {
			continue
		}
		i := slices.IndexFunc(recs, func(r ShadowRecord) bool { return r.DeviceID == p.DeviceID })
		if i < 0 {
			recs = append(recs, *p)
			continue
		}
		recs[i].merge(p)
	}
	sortShadow(recs)
	return recs, nil
}

func sortShadow(recs []ShadowRecord) {
	slices.SortFunc(recs, func(a, b ShadowRecord) int { return strings.Compare(a.DeviceID, b.DeviceID) })
}

// accept clears a device's failed shadow phase and queues its job again,
// under a new id and without Shadow (see the package's shadow notes).
func (e *Engine) accept(r *Rollout, now time.Time, a Action) error {
	if r.State.Final() {
		return fmt.Errorf("%w: accept %s on %s, which is %s: a final rollout sends no more update jobs; start a new rollout for the device",
			ErrState, a.Device, r.ID, r.State)
	}
	i := slices.IndexFunc(r.Jobs, func(j Job) bool { return j.DeviceID == a.Device })
	if i < 0 {
		return fmt.Errorf("%w: accept: device %q is not a target of %s", ErrNotFound, a.Device, r.ID)
	}
	j := &r.Jobs[i]
	if !j.shadowFailed() {
		what := "its job is " + j.State
		if j.Shadow != nil && j.Shadow.AcceptedBy != "" {
			what = "it was accepted by " + j.Shadow.AcceptedBy
		}
		return fmt.Errorf("%w: accept %s on %s: the device did not fail its shadow phase (%s)", ErrState, a.Device, r.ID, what)
	}
	old := j.JobID
	delete(e.jobs, old)
	delete(e.jobs, RollbackJobID(old))
	j.JobID = old + "-a"
	e.jobs[j.JobID] = jobRef{r: r, i: i}
	e.jobs[RollbackJobID(j.JobID)] = jobRef{r: r, i: i, rollback: true}
	j.Shadow.AcceptedBy, j.Shadow.AcceptedAt, j.Shadow.FailedJob = a.By, now, old
	reason := fmt.Sprintf("shadow failure of %s (agreement %.3f) accepted by %s", a.Device, j.Shadow.Agreement, a.By)
	if a.Reason != "" {
		reason += ": " + a.Reason
	}
	j.State, j.Reason, j.Progress, j.QueuedAt, j.SentAt, j.UpdatedAt = JobPending, reason, 0, now, time.Time{}, now
	phase := r.Phase()
	r.record(now, phase, phase, reason, a.By)
	return nil
}
