package rollout

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"edgefleet/fleet/api"
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
	return s
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
