package rest

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"edgefleet/fleet/api"
)

// Rollout states.
const (
	StatePending    = "pending"
	StateCanary     = "canary"
	StateWave       = "wave" // RolloutSummary.Wave says which
	StatePaused     = "paused"
	StateAborted    = "aborted"
	StateCompleted  = "completed"
	StateRolledBack = "rolled_back"
)

// CreateRollout is the body of POST /api/v1/rollouts. Strings take the
// fleetctl flag syntax: model (or firmware) "name@version", selector
// "site=a,line=3", waves "10%,50%,100%", max_failures "5%" or "3",
// durations "2m".
type CreateRollout struct {
	Model        string `json:"model,omitempty"`
	Firmware     string `json:"firmware,omitempty"`
	Selector     string `json:"selector"`
	Canary       int    `json:"canary"`
	Waves        string `json:"waves"`
	MaxFailures  string `json:"max_failures"`
	HealthWindow string `json:"health_window"`
	JobTimeout   string `json:"job_timeout"`
	// MaxFailureRate (0..1) aborts once failed / finished jobs pass it,
	// counted from MinExecutions finished jobs on; 0 leaves it off.
	MaxFailureRate float64 `json:"max_failure_rate,omitempty"`
	MinExecutions  int     `json:"min_executions,omitempty"`
	// RollbackOnAbort sends the failed devices back when the rollout
	// aborts; nil means true.
	RollbackOnAbort *bool `json:"rollback_on_abort,omitempty"`
	// Shadow, a duration like "10m", has each device run the candidate
	// beside its serving model that long before it swaps; a device whose
	// agreement (F1) ends below MinAgreement (0..1, needed with Shadow)
	// fails without swapping. ShadowSample "1/4" runs the candidate on one
	// frame in 4 (default every frame); ShadowCPU "25%" caps its share of
	// one core (default 25%). Models only.
	Shadow       string  `json:"shadow,omitempty"`
	MinAgreement float64 `json:"min_agreement,omitempty"`
	ShadowSample string  `json:"shadow_sample,omitempty"`
	ShadowCPU    string  `json:"shadow_cpu,omitempty"`
}

// ShadowSpec reads the request's shadow fields; nil when Shadow is empty.
// The error names the field.
func (c CreateRollout) ShadowSpec() (*api.ShadowSpec, error) {
	if c.Shadow == "" {
		if c.MinAgreement != 0 || c.ShadowSample != "" || c.ShadowCPU != "" {
			return nil, fmt.Errorf("shadow: min_agreement, shadow_sample and shadow_cpu need shadow (a duration like 10m)")
		}
		return nil, nil
	}
	if c.Firmware != "" {
		return nil, fmt.Errorf("shadow: firmware has no shadow phase (models only)")
	}
	d, err := time.ParseDuration(c.Shadow)
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("shadow: %q is not a positive duration like 10m", c.Shadow)
	}
	if !(c.MinAgreement > 0 && c.MinAgreement <= 1) {
		return nil, fmt.Errorf("min_agreement: %v is not in (0, 1]; shadow needs it", c.MinAgreement)
	}
	sp := &api.ShadowSpec{DurationS: d.Seconds(), MinAgreement: c.MinAgreement}
	if c.ShadowSample != "" {
		if sp.SampleEvery, err = ParseShadowSample(c.ShadowSample); err != nil {
			return nil, err
		}
	}
	if c.ShadowCPU != "" {
		if sp.CPUPercent, err = ParseCPUPercent(c.ShadowCPU); err != nil {
			return nil, err
		}
	}
	if err := sp.Validate(); err != nil {
		return nil, fmt.Errorf("shadow: %w", err)
	}
	return sp, nil
}

// ParseShadowSample reads "1/4" (one frame in 4) into 4; "1/1" and "1"
// mean every frame.
func ParseShadowSample(s string) (int, error) {
	t := strings.TrimSpace(s)
	if t == "1" {
		return 1, nil
	}
	num, den, ok := strings.Cut(t, "/")
	n, err := strconv.Atoi(den)
	if !ok || num != "1" || err != nil || n < 1 || n > 1000 || strings.TrimSpace(den) != den {
		return 0, fmt.Errorf("shadow_sample: %q is not 1/N with N in 1..1000 (1/4: one frame in 4)", s)
	}
	return n, nil
}

// ParseCPUPercent reads "25%" into 25 (1..100; the % sign is needed).
func ParseCPUPercent(s string) (int, error) {
	p, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	n, err := strconv.Atoi(p)
	if !ok || err != nil || n < 1 || n > 100 {
		return 0, fmt.Errorf("shadow_cpu: %q is not a share of one core like 25%% (1%% to 100%%)", s)
	}
	return n, nil
}

// Check validates the request's syntax without a server; the error names the field.
func (c CreateRollout) Check() error {
	if (c.Model == "") == (c.Firmware == "") {
		return fmt.Errorf("rest: give model or firmware, one of them")
	}
	if n, v, ok := strings.Cut(c.Model+c.Firmware, "@"); !ok || n == "" || v == "" {
		return fmt.Errorf("rest: %q is not name@version", c.Model+c.Firmware)
	}
	if _, err := ParseSelector(c.Selector); err != nil {
		return err
	}
	if c.Waves != "" {
		if _, err := ParseWaves(c.Waves); err != nil {
			return err
		}
	}
	if c.MaxFailures != "" {
		if _, err := ParseThreshold(c.MaxFailures); err != nil {
			return err
		}
	}
	if !(c.MaxFailureRate >= 0 && c.MaxFailureRate <= 1) {
		return fmt.Errorf("max_failure_rate: %v is not in [0, 1]", c.MaxFailureRate)
	}
	if c.MinExecutions < 0 {
		return fmt.Errorf("min_executions: %d is negative", c.MinExecutions)
	}
	if _, err := c.ShadowSpec(); err != nil {
		return err
	}
	for _, d := range [][2]string{{"health_window", c.HealthWindow}, {"job_timeout", c.JobTimeout}} {
		if d[1] == "" {
			continue
		}
		if v, err := time.ParseDuration(d[1]); err != nil || v < 0 {
			return fmt.Errorf("%s: %q is not a duration like 2m", d[0], d[1])
		}
	}
	return nil
}

// Abort is the optional body of POST /api/v1/rollouts/{id}/abort.
type Abort struct {
	Reason string `json:"reason"`
}

// Rollout actions: POST /api/v1/rollouts/{id}/{action}.
const (
	ActionPause    = "pause"
	ActionResume   = "resume"
	ActionAbort    = "abort"
	ActionRollback = "rollback"
	// ActionAccept accepts one device's failed shadow phase (body Accept):
	// its failure no longer counts and it gets the update again without a
	// shadow phase. Only while the rollout runs or is paused (409 else).
	ActionAccept = "accept"
)

// Accept is the body of POST /api/v1/rollouts/{id}/accept.
type Accept struct {
	Device string `json:"device"`
	Reason string `json:"reason,omitempty"`
}

// Accepted is the answer to an accept: the rollout's summary and the device.
type Accepted struct {
	RolloutSummary
	Device string `json:"device"`
}

// RolloutSummary is a rollout without its per-device jobs: the body of
// POST /api/v1/rollouts and of the actions, and an element of RolloutList.
type RolloutSummary struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	SHA256      string `json:"sha256"`
	Selector    string `json:"selector"`
	State       string `json:"state"`
	Wave        int    `json:"wave"`
	Waves       int    `json:"waves"`
	Reason      string `json:"reason,omitempty"`
	Targets     int    `json:"targets"`
	Succeeded   int    `json:"succeeded"`
	Failed      int    `json:"failed"`
	Cancelled   int    `json:"cancelled,omitempty"` // jobs never sent: the rollout aborted or rolled back first
	MaxFailures int    `json:"max_failures"`
	// MaxFailureRate, MinExecutions and RollbackOnAbort are the spec's (see
	// CreateRollout); RollbackOnAbort is what the engine applies (true
	// when the request left it out).
	MaxFailureRate  float64 `json:"max_failure_rate,omitempty"`
	MinExecutions   int     `json:"min_executions,omitempty"`
	RollbackOnAbort bool    `json:"rollback_on_abort"`
	RolledBack      int     `json:"rolled_back"` // devices whose rollback job succeeded
	// Shadow is the rollout's shadow phase, if it has one.
	Shadow    *api.ShadowSpec `json:"shadow,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Progress  []WaveProgress  `json:"progress"`
}

// WaveProgress counts one wave's jobs.
type WaveProgress struct {
	Wave      int `json:"wave"` // 0 = canary
	Devices   int `json:"devices"`
	Pending   int `json:"pending"`
	InFlight  int `json:"in_flight"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled,omitempty"` // never sent: the rollout stopped first
	// Final shadow reports of the wave: passed, failed (not accepted),
	// accepted by an operator, and their mean agreement.
	ShadowPassed    int     `json:"shadow_passed,omitempty"`
	ShadowFailed    int     `json:"shadow_failed,omitempty"`
	ShadowAccepted  int     `json:"shadow_accepted,omitempty"`
	ShadowAgreement float64 `json:"shadow_agreement,omitempty"`
}

// RolloutList is the body of GET /api/v1/rollouts.
type RolloutList struct {
	Rollouts []RolloutSummary `json:"rollouts"`
}

// Rollout is the body of GET /api/v1/rollouts/{id}.
type Rollout struct {
	RolloutSummary
	Canary       int       `json:"canary"`
	WavePercents []float64 `json:"wave_percents"`
	HealthWindow string    `json:"health_window"`
	JobTimeout   string    `json:"job_timeout"`
	// States counts the jobs by state, and RollbackStates the rollback
	// jobs by theirs (devices without one are not counted).
	States         map[string]int `json:"states"`
	RollbackStates map[string]int `json:"rollback_states"`
	Jobs           []Job          `json:"jobs"`
	// Transitions is the rollout's state history, oldest first.
	Transitions []Transition `json:"transitions,omitempty"`
}

// Transition is one change of a rollout's state.
type Transition struct {
	At     time.Time `json:"at"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason,omitempty"`
	// By is the operator, or "engine" for the rollout engine's own decisions.
	By string `json:"by,omitempty"`
}

// Job is one device's part of a rollout.
type Job struct {
	DeviceID string  `json:"device_id"`
	JobID    string  `json:"job_id"`
	Wave     int     `json:"wave"`  // 0 = canary
	State    string  `json:"state"` // a device's (fleet/api Job*), or pending, dispatched, timed_out, skipped, cancelled (never sent: the rollout stopped first)
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
	// Shadow is the job's shadow phase so far, if the rollout has one.
	Shadow *JobShadow `json:"shadow,omitempty"`
}

// Shadow outcomes (JobShadow.Outcome).
const (
	ShadowRunning  = "running"
	ShadowPassed   = "passed"
	ShadowFailed   = "failed"
	ShadowAccepted = "accepted"
)

// JobShadow is a job's shadow phase in brief.
type JobShadow struct {
	// Final is set by the device's final report; Passed only means
	// something then (agreement >= min_agreement).
	Final     bool      `json:"final,omitempty"`
	Passed    bool      `json:"passed,omitempty"`
	Agreement float64   `json:"agreement"`
	Frames    int       `json:"frames"`
	UpdatedAt time.Time `json:"updated_at"`
	// AcceptedBy accepted a failed phase at AcceptedAt; FailedJob is the
	// job id that failed (the job was sent again under a new one).
	AcceptedBy string    `json:"accepted_by,omitempty"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
	FailedJob  string    `json:"failed_job,omitempty"`
}

// Outcome is one of the Shadow* constants.
func (s *JobShadow) Outcome() string {
	switch {
	case s.AcceptedBy != "":
		return ShadowAccepted
	case s.Final && s.Passed:
		return ShadowPassed
	case s.Final:
		return ShadowFailed
	}
	return ShadowRunning
}

// RolloutShadow is the body of GET /api/v1/rollouts/{id}/shadow: every
// device's latest periodic and final shadow report. Sample JPEGs are left
// out of the reports; each is served at its SampleURLs entry (GET
// /api/v1/rollouts/{id}/devices/{device}/shadow/samples/{n}, image/jpeg).
type RolloutShadow struct {
	ID      string          `json:"id"`
	Spec    *api.ShadowSpec `json:"spec,omitempty"`
	Devices []ShadowDevice  `json:"devices"`
}

// ShadowDevice is one device's shadow phase in a rollout.
type ShadowDevice struct {
	DeviceID   string            `json:"device_id"`
	JobID      string            `json:"job_id"`
	State      string            `json:"state"` // the job's
	Shadow     *JobShadow        `json:"shadow,omitempty"`
	Latest     *api.ShadowReport `json:"latest,omitempty"`
	Final      *api.ShadowReport `json:"final,omitempty"`
	SampleURLs []string          `json:"sample_urls,omitempty"`
}

// Threshold is a failure budget: an absolute Count, or a Percent of the
// rollout's targets when Percent is set.
type Threshold struct {
	Count   int     `json:"count,omitempty"`
	Percent float64 `json:"percent,omitempty"`
}

// ParseSelector reads "site=plant-a,line=3"; "" is the empty selector.
func ParseSelector(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" || strings.Contains(v, "=") {
			return nil, fmt.Errorf("selector: %q is not key=value", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("selector: key %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// FormatSelector is the inverse of ParseSelector, keys sorted.
func FormatSelector(sel map[string]string) string {
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + sel[k]
	}
	return strings.Join(keys, ",")
}

// ParseWaves reads "10%,50%,100%" (the % signs are optional).
func ParseWaves(s string) ([]float64, error) {
	var out []float64
	for _, w := range strings.Split(s, ",") {
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(w), "%"), 64)
		if err != nil || math.IsNaN(f) {
			return nil, fmt.Errorf("waves: %q is not a percentage", w)
		}
		out = append(out, f)
	}
	return out, nil
}

// ParseRate reads a failure rate as "5%" or "0.05" into 0.05.
func ParseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	div := 1.0
	if p, ok := strings.CutSuffix(t, "%"); ok {
		t, div = p, 100
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || !(f/div >= 0 && f/div <= 1) {
		return 0, fmt.Errorf("max failure rate: %q is not a rate in [0, 1] or a percentage", s)
	}
	return f / div, nil
}

// ParseThreshold reads "5%" (a percentage of the targets) or "3" (a count).
func ParseThreshold(s string) (Threshold, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || !(f >= 0 && f <= 100) {
			return Threshold{}, fmt.Errorf("max failures: %q is not a percentage in [0, 100]", s)
		}
		return Threshold{Percent: f}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return Threshold{}, fmt.Errorf("max failures: %q is neither a count nor a percentage", s)
	}
	return Threshold{Count: n}, nil
}
