package rollout

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
)

// Threshold is a failure budget: an absolute Count, or a Percent of the
// rollout's targets when Percent is set. The rollout aborts once its failures
// exceed the budget, so 0 aborts at the first failure.
type Threshold struct {
	Count   int     `json:"count,omitempty"`
	Percent float64 `json:"percent,omitempty"`
}

// Limit is the number of failures allowed among total targets.
func (t Threshold) Limit(total int) int {
	if t.Percent > 0 {
		return int(math.Floor(t.Percent * float64(total) / 100))
	}
	return t.Count
}

func (t Threshold) String() string {
	if t.Percent > 0 {
		return strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(t.Count)
}

// Spec is what an operator asks for.
type Spec struct {
	// Artifact is sent in every update command (with its URL, manifest and signature).
	Artifact api.Artifact `json:"artifact"`
	// Selector picks the target devices by label; empty means every device.
	Selector map[string]string `json:"selector,omitempty"`
	// Canary devices go first, alone.
	Canary int `json:"canary"`
	// Waves are cumulative percentages of the targets, increasing, e.g. 10, 50, 100.
	Waves []float64 `json:"waves"`
	// MaxFailures is the failure budget of the whole rollout.
	MaxFailures Threshold `json:"max_failures"`
	// MaxFailureRate (0..1) limits the failures of each wave, canary
	// included, as a share of the wave. A wave stops, and the rollout
	// aborts, as soon as its failures exceed MaxFailureRate × its size
	// (whatever its other devices do), or once MinExecutions of its jobs
	// have ended and more than MaxFailureRate of those failed. Skipped
	// devices are not part of a wave. 0 means no per-wave limit (MaxFailures
	// still applies; MaxFailures 0 stops at the first failure).
	MaxFailureRate float64 `json:"max_failure_rate,omitempty"`
	// MinExecutions is how many jobs of a wave must have ended before their
	// failure rate alone stops it; 0 leaves only the rule on the wave's size.
	MinExecutions int `json:"min_executions,omitempty"`
	// RollbackOnAbort, true when nil, sends every device the rollout may
	// have changed back to its previous version when the rollout aborts
	// (canaries and successes included); false sends back only the failed.
	RollbackOnAbort *bool `json:"rollback_on_abort,omitempty"`
	// HealthWindow is how long a device watches the new version before it reports success.
	HealthWindow time.Duration `json:"health_window"`
	// JobTimeout bounds a job from the start of its wave (offline time
	// included) to its final report; a job past it counts as failed. 0 means 30m.
	JobTimeout time.Duration `json:"job_timeout"`
	// Shadow, on a model rollout, has each device run the candidate beside
	// its serving model before it swaps (api.ShadowSpec); a device whose
	// final agreement is below MinAgreement fails without swapping, and
	// counts against the failure limits as any failure. nil: no shadow
	// phase. JobTimeout must cover the phase and the health window.
	Shadow *api.ShadowSpec `json:"shadow,omitempty"`
}

// shadowDuration is how long the shadow phase runs (0 without one).
func (s *Spec) shadowDuration() time.Duration {
	if s.Shadow == nil {
		return 0
	}
	return time.Duration(s.Shadow.DurationS * float64(time.Second))
}

// Validate checks the spec; the error names the field.
func (s *Spec) Validate() error {
	a := &s.Artifact
	switch a.Kind {
	case "model", "firmware":
	default:
		return fmt.Errorf("artifact.kind %q is neither model nor firmware", a.Kind)
	}
	if a.Name == "" || a.Version == "" || len(a.SHA256) != 64 {
		return fmt.Errorf("artifact needs name, version and sha256 (have %q, %q, %q)", a.Name, a.Version, a.SHA256)
	}
	if s.Canary < 0 {
		return fmt.Errorf("canary %d is negative", s.Canary)
	}
	if len(s.Waves) == 0 {
		return errors.New("waves: at least one wave is needed")
	}
	for i, w := range s.Waves {
		if !(w > 0 && w <= 100) {
			return fmt.Errorf("waves[%d]: %v%% is not in (0, 100]", i, w)
		}
		if i > 0 && w <= s.Waves[i-1] {
			return fmt.Errorf("waves[%d]: %v%% does not increase on %v%%", i, w, s.Waves[i-1])
		}
	}
	if s.MaxFailures.Count < 0 || s.MaxFailures.Percent < 0 || s.MaxFailures.Percent > 100 {
		return fmt.Errorf("max_failures %s is out of range", s.MaxFailures)
	}
	if !(s.MaxFailureRate >= 0 && s.MaxFailureRate <= 1) {
		return fmt.Errorf("max_failure_rate %v is not in [0, 1]", s.MaxFailureRate)
	}
	if s.MinExecutions < 0 {
		return fmt.Errorf("min_executions %d is negative", s.MinExecutions)
	}
	if s.HealthWindow < 0 || s.JobTimeout < 0 {
		return errors.New("health_window and job_timeout must not be negative")
	}
	if s.JobTimeout > 0 && s.JobTimeout <= s.HealthWindow {
		return fmt.Errorf("job_timeout %s must exceed health_window %s", s.JobTimeout, s.HealthWindow)
	}
	if s.Shadow != nil {
		if a.Kind != "model" {
			return fmt.Errorf("shadow: a %s rollout has no shadow phase (models only)", a.Kind)
		}
		if err := s.Shadow.Validate(); err != nil {
			return fmt.Errorf("shadow: %w", err)
		}
		if need := s.HealthWindow + s.shadowDuration(); s.JobTimeout > 0 && s.JobTimeout <= need {
			return fmt.Errorf("job_timeout %s must exceed the shadow phase and health_window (%s)", s.JobTimeout, need)
		}
	}
	for k, v := range s.Selector {
		if k == "" || strings.ContainsAny(k, "=,") || strings.ContainsAny(v, "=,") {
			return fmt.Errorf("selector %q=%q is malformed", k, v)
		}
	}
	return nil
}

func (s *Spec) rollbackOnAbort() bool { return s.RollbackOnAbort == nil || *s.RollbackOnAbort }

// clone copies the spec's maps and slices (the artifact's bytes are shared:
// nothing changes them).
func (s Spec) clone() Spec {
	s.Selector = maps.Clone(s.Selector)
	s.Waves = slices.Clone(s.Waves)
	if s.RollbackOnAbort != nil {
		v := *s.RollbackOnAbort
		s.RollbackOnAbort = &v
	}
	if s.Shadow != nil {
		v := *s.Shadow
		s.Shadow = &v
	}
	return s
}

// The spec's text forms are the REST contract's (fleet/api/rest, a leaf
// package), so that fleetctl checks flags exactly as the engine does.

// ParseSelector reads "site=plant-a,line=3"; "" is the empty selector.
func ParseSelector(s string) (map[string]string, error) { return rest.ParseSelector(s) }

// FormatSelector is the inverse of ParseSelector, keys sorted.
func FormatSelector(sel map[string]string) string { return rest.FormatSelector(sel) }

// ParseWaves reads "10%,50%,100%" (the % signs are optional).
func ParseWaves(s string) ([]float64, error) { return rest.ParseWaves(s) }

// ParseRate reads a failure rate as "5%" or "0.05" into 0.05.
func ParseRate(s string) (float64, error) { return rest.ParseRate(s) }

// ParseThreshold reads "5%" (a percentage of the targets) or "3" (a count).
func ParseThreshold(s string) (Threshold, error) {
	t, err := rest.ParseThreshold(s)
	return Threshold{Count: t.Count, Percent: t.Percent}, err
}
