package rollout

import (
	"errors"
	"time"

	"edgefleet/fleet/api"
)

// Errors returned by the Engine, some with details after them
// ("rollout: not found: get r9"). Test with errors.Is.
var (
	// ErrNotFound means no rollout or job has that id.
	ErrNotFound = errors.New("rollout: not found")
	// ErrState means the operation does not apply in the rollout's state.
	ErrState = errors.New("rollout: not allowed in this state")
	// ErrNoTargets means the selector matches no device.
	ErrNoTargets = errors.New("rollout: no device matches the selector")
	// ErrClosed means the engine is closed.
	ErrClosed = errors.New("rollout: engine closed")
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

func (s State) running() bool { return s == StateCanary || s == StateWave }

// Job states beyond the device-reported api.Job* ones.
const (
	JobPending    = "pending"    // waiting for its wave, or for the device to come online
	JobDispatched = "dispatched" // sent, nothing heard yet
	JobTimedOut   = "timed_out"
	JobSkipped    = "skipped" // the device already ran the version
	// JobCancelled: never sent, because the rollout aborted or was rolled
	// back first; Job.Reason says why. Neither a success nor a failure.
	JobCancelled = "cancelled"
)

func jobFinal(s string) bool {
	switch s {
	case api.JobSucceeded, api.JobFailed, api.JobRolledBack, JobTimedOut, JobSkipped, JobCancelled:
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
	// Shadow is what the device's shadow phase showed, when the spec asks
	// for one (the full reports are in the Store, see ShadowRecord).
	Shadow *ShadowResult `json:"shadow,omitempty"`
}

// ShadowResult is the part of a job's shadow reports the rollout keeps.
type ShadowResult struct {
	// Final is set by the device's final report; Passed only means
	// something then: Agreement >= the spec's MinAgreement.
	Final     bool      `json:"final,omitempty"`
	Passed    bool      `json:"passed,omitempty"`
	Agreement float64   `json:"agreement"`
	Frames    int       `json:"frames"`
	UpdatedAt time.Time `json:"updated_at"`
	// AcceptedBy names the operator who accepted a failed shadow phase, at
	// AcceptedAt; the job then got a new id (FailedJob is the old one) and
	// was sent again without Shadow.
	AcceptedBy string    `json:"accepted_by,omitempty"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
	FailedJob  string    `json:"failed_job,omitempty"`
}

// shadowFailed reports whether the job ended because its shadow phase
// failed the gate (and no operator accepted it): the device kept its model.
func (j *Job) shadowFailed() bool {
	return j.State == api.JobFailed && j.Shadow != nil && j.Shadow.Final && !j.Shadow.Passed && j.Shadow.AcceptedBy == ""
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
	PausedFrom State `json:"paused_from,omitempty"`
	// Reason says why it aborted, completed or was rolled back. An abort's
	// reason stays when the rollout is rolled back later.
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// WaveEnd[k] is the number of targets in waves 0..k (canary = wave 0).
	WaveEnd []int `json:"wave_end"`
	Jobs    []Job `json:"jobs"`
	// Transitions is the rollout's history, oldest first; entries are
	// appended, never changed.
	Transitions []Transition `json:"transitions"`
}

// clone returns a copy that shares nothing mutable with r.
func (r *Rollout) clone() *Rollout {
	c := *r
	c.Jobs = append([]Job(nil), r.Jobs...)
	for i := range c.Jobs {
		if sh := c.Jobs[i].Shadow; sh != nil {
			v := *sh
			c.Jobs[i].Shadow = &v
		}
	}
	c.WaveEnd = append([]int(nil), r.WaveEnd...)
	c.Transitions = append([]Transition(nil), r.Transitions...)
	c.Spec = r.Spec.clone()
	return &c
}

// waveJobs returns the jobs of wave w.
func (r *Rollout) waveJobs(w int) []Job {
	start := 0
	if w > 0 {
		start = r.WaveEnd[w-1]
	}
	return r.Jobs[start:r.WaveEnd[w]]
}

// WaveProgress counts one wave's jobs.
type WaveProgress struct {
	Wave      int `json:"wave"` // 0 = canary
	Devices   int `json:"devices"`
	Pending   int `json:"pending"`
	InFlight  int `json:"in_flight"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// Cancelled jobs were never sent: the rollout stopped first.
	Cancelled int `json:"cancelled,omitempty"`
	// Shadow phases of the wave that ended: passed, failed (not accepted)
	// and accepted by an operator, and the mean agreement of their final
	// reports (of those that compared a frame).
	ShadowPassed    int     `json:"shadow_passed,omitempty"`
	ShadowFailed    int     `json:"shadow_failed,omitempty"`
	ShadowAccepted  int     `json:"shadow_accepted,omitempty"`
	ShadowAgreement float64 `json:"shadow_agreement,omitempty"`
	shadowMeasured  int     // final reports that compared a frame
}

// Summary is a rollout without its per-device jobs, for lists.
type Summary struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	SHA256      string `json:"sha256"`
	Selector    string `json:"selector"`
	State       State  `json:"state"`
	Wave        int    `json:"wave"`
	Waves       int    `json:"waves"`
	Reason      string `json:"reason,omitempty"`
	Targets     int    `json:"targets"`
	Succeeded   int    `json:"succeeded"`
	Failed      int    `json:"failed"`
	Cancelled   int    `json:"cancelled,omitempty"` // jobs never sent: the rollout stopped first
	MaxFailures int    `json:"max_failures"`
	// MaxFailureRate, MinExecutions and RollbackOnAbort are the spec's.
	MaxFailureRate  float64 `json:"max_failure_rate,omitempty"`
	MinExecutions   int     `json:"min_executions,omitempty"`
	RollbackOnAbort bool    `json:"rollback_on_abort"`
	// Shadow is the spec's shadow phase, if any.
	Shadow     *api.ShadowSpec `json:"shadow,omitempty"`
	RolledBack int             `json:"rolled_back"` // devices whose rollback job succeeded
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	Progress   []WaveProgress  `json:"progress"`
}

// Summarize counts r's jobs.
func (r *Rollout) Summarize() Summary {
	s := Summary{ID: r.ID, Kind: r.Spec.Artifact.Kind, Name: r.Spec.Artifact.Name, Version: r.Spec.Artifact.Version,
		SHA256: r.Spec.Artifact.SHA256, Selector: FormatSelector(r.Spec.Selector), State: r.State, Wave: r.Wave,
		Waves: len(r.Spec.Waves), Reason: r.Reason, Targets: len(r.Jobs), MaxFailures: r.Spec.MaxFailures.Limit(len(r.Jobs)),
		MaxFailureRate: r.Spec.MaxFailureRate, MinExecutions: r.Spec.MinExecutions, RollbackOnAbort: r.Spec.rollbackOnAbort(),
		Shadow: r.Spec.Shadow, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
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
		case j.State == JobCancelled:
			p.Cancelled++
			s.Cancelled++
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
		p.countShadow(j.Shadow)
	}
	for w := range s.Progress {
		p := &s.Progress[w]
		if p.shadowMeasured > 0 {
			p.ShadowAgreement /= float64(p.shadowMeasured)
		}
	}
	return s
}

// countShadow adds a job's final shadow result to the wave's counts (the
// agreement summed; Summarize divides).
func (p *WaveProgress) countShadow(sh *ShadowResult) {
	if sh == nil || !sh.Final {
		return
	}
	switch {
	case sh.AcceptedBy != "":
		p.ShadowAccepted++
	case sh.Passed:
		p.ShadowPassed++
	default:
		p.ShadowFailed++
	}
	if sh.Frames > 0 {
		p.ShadowAgreement += sh.Agreement
		p.shadowMeasured++
	}
}
