package api

import (
	"fmt"
	"math"
)

// Shadow evaluation: a model update Command may carry a ShadowSpec. The
// device then downloads and verifies the candidate as always, reports
// JobShadow, and runs the candidate beside the serving model on a sample of
// live frames for DurationS, within a CPU budget. It compares the candidate
// with the serving model (the reference) on the same frames and sends a
// ShadowReport in its JobStatus every few seconds and once at the end
// (Final). The candidate's boxes never become detections.
//
// At the end the device decides with the fleet's threshold: Agreement at or
// above MinAgreement goes on to JobInstalling as without shadow; below it the
// job ends JobFailed with the numbers as its reason and the final report, and
// the serving model stays. A Command whose Shadow is nil (or an operator's
// accept of a failed shadow, which fleetd sends as a new job without Shadow)
// swaps at once.

// Shadow limits.
const (
	MaxShadowSamples     = 4         // disagreement samples in a final report
	MaxShadowSampleBytes = 128 << 10 // one sample's JPEG
	maxShadowCameras     = 64
	maxShadowClasses     = 1000
)

// ShadowSpec is what a rollout asks of the shadow phase.
type ShadowSpec struct {
	DurationS    float64 `json:"duration_s"`    // how long the phase runs (> 0)
	MinAgreement float64 `json:"min_agreement"` // 0..1, compared with ShadowReport.Agreement
	// SampleEvery runs the candidate on one frame in SampleEvery per camera
	// (--shadow-sample 1/4 is 4); 0 or 1 means every frame.
	SampleEvery int `json:"sample_every,omitempty"`
	// CPUPercent caps the candidate's inference time as a share of one core
	// (1..100); 0 means 25.
	CPUPercent int `json:"cpu_percent,omitempty"`
}

// Validate checks the ranges.
func (s *ShadowSpec) Validate() error {
	switch {
	case !(s.DurationS > 0) || s.DurationS > 7*24*3600:
		return fmt.Errorf("duration_s %v outside (0, 604800]", s.DurationS)
	case !(s.MinAgreement >= 0 && s.MinAgreement <= 1):
		return fmt.Errorf("min_agreement %v outside 0..1", s.MinAgreement)
	case s.SampleEvery < 0 || s.SampleEvery > 1000:
		return fmt.Errorf("sample_every %d outside 0..1000", s.SampleEvery)
	case s.CPUPercent < 0 || s.CPUPercent > 100:
		return fmt.Errorf("cpu_percent %d outside 0..100", s.CPUPercent)
	}
	return nil
}

// ShadowStats compares the candidate's boxes with the serving model's on the
// same frames. A match is the same class with IoU >= 0.5, greedy by score.
// Precision is Matched/Candidate, Recall Matched/Serving (the serving model
// is the reference), F1 their harmonic mean, CountRatio Candidate/Serving,
// ScoreShift the mean candidate score minus serving score over matches.
type ShadowStats struct {
	Serving    int     `json:"serving"`   // boxes of the serving model
	Candidate  int     `json:"candidate"` // boxes of the candidate
	Matched    int     `json:"matched"`
	Precision  float64 `json:"precision"`
	Recall     float64 `json:"recall"`
	F1         float64 `json:"f1"`
	CountRatio float64 `json:"count_ratio"`
	ScoreShift float64 `json:"score_shift"`
}

// ShadowClass is one class's stats (by the serving model's label).
type ShadowClass struct {
	Label string `json:"label"`
	ShadowStats
}

// ShadowConfusion counts boxes that match by IoU but not by class: the
// serving model said Serving where the candidate said Candidate.
type ShadowConfusion struct {
	Serving   string `json:"serving"`
	Candidate string `json:"candidate"`
	Count     int    `json:"count"`
}

// ShadowCamera is one camera's share of a report.
type ShadowCamera struct {
	Camera string `json:"camera"`
	Frames int    `json:"frames"` // frames both models ran on
	ShadowStats
	Classes   []ShadowClass     `json:"classes,omitempty"`
	Confusion []ShadowConfusion `json:"confusion,omitempty"`
}

// ShadowSample is a frame where the two models disagree most: one JPEG with
// the serving model's boxes on the left and the candidate's on the right.
type ShadowSample struct {
	Camera       string  `json:"camera"`
	TimeUs       int64   `json:"time_us"`
	Disagreement float64 `json:"disagreement"` // 1 - F1 on that frame
	JPEG         []byte  `json:"jpeg"`
}

// ShadowReport is the device's measurement so far (or final).
type ShadowReport struct {
	Final    bool    `json:"final,omitempty"`
	ElapsedS float64 `json:"elapsed_s"`
	Frames   int     `json:"frames"` // frames compared, all cameras
	// Skipped counts sampled frames the CPU budget left uncompared.
	Skipped int `json:"skipped,omitempty"`
	// Agreement is the overall F1; the gate compares it with MinAgreement.
	Agreement    float64 `json:"agreement"`
	MinAgreement float64 `json:"min_agreement"`
	ShadowStats
	ServingMs    float64 `json:"serving_ms"`   // mean inference time per frame
	CandidateMs  float64 `json:"candidate_ms"` // likewise for the candidate
	LatencyRatio float64 `json:"latency_ratio"`

	Cameras   []ShadowCamera    `json:"cameras,omitempty"`
	Confusion []ShadowConfusion `json:"confusion,omitempty"` // all cameras
	Samples   []ShadowSample    `json:"samples,omitempty"`   // final report only
}

// Validate bounds a report from a device: counts, finite figures, sample sizes.
func (r *ShadowReport) Validate() error {
	if len(r.Cameras) > maxShadowCameras {
		return fmt.Errorf("%d cameras, more than %d", len(r.Cameras), maxShadowCameras)
	}
	if len(r.Samples) > MaxShadowSamples {
		return fmt.Errorf("%d samples, more than %d", len(r.Samples), MaxShadowSamples)
	}
	for i, s := range r.Samples {
		if len(s.JPEG) > MaxShadowSampleBytes {
			return fmt.Errorf("samples[%d]: %d bytes, more than %d", i, len(s.JPEG), MaxShadowSampleBytes)
		}
		if err := ValidateID(s.Camera); err != nil {
			return fmt.Errorf("samples[%d].camera: %w", i, err)
		}
	}
	for _, f := range []float64{r.ElapsedS, r.Agreement, r.MinAgreement, r.ServingMs, r.CandidateMs, r.LatencyRatio} {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return fmt.Errorf("figure %v is not a finite non-negative number", f)
		}
	}
	if err := r.ShadowStats.validate(); err != nil {
		return err
	}
	for i, c := range r.Cameras {
		if err := ValidateID(c.Camera); err != nil {
			return fmt.Errorf("cameras[%d].camera: %w", i, err)
		}
		if len(c.Classes) > maxShadowClasses || len(c.Confusion) > maxShadowClasses {
			return fmt.Errorf("cameras[%d]: more than %d classes", i, maxShadowClasses)
		}
		if err := c.ShadowStats.validate(); err != nil {
			return fmt.Errorf("cameras[%d]: %w", i, err)
		}
		for j, k := range c.Classes {
			if err := k.ShadowStats.validate(); err != nil {
				return fmt.Errorf("cameras[%d].classes[%d]: %w", i, j, err)
			}
		}
	}
	if len(r.Confusion) > maxShadowClasses {
		return fmt.Errorf("%d confusion pairs, more than %d", len(r.Confusion), maxShadowClasses)
	}
	return nil
}

func (s *ShadowStats) validate() error {
	if s.Serving < 0 || s.Candidate < 0 || s.Matched < 0 {
		return fmt.Errorf("negative count")
	}
	for _, f := range []float64{s.Precision, s.Recall, s.F1, s.CountRatio, s.ScoreShift} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("figure %v is not finite", f)
		}
	}
	return nil
}
