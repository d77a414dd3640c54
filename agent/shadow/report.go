package shadow

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"edgefleet/fleet/api"
)

// Accumulator sums frame comparisons into a report. It is safe for
// concurrent use.
type Accumulator struct {
	mu      sync.Mutex
	start   time.Time
	frames  int
	skipped int
	total   Counts
	servT   time.Duration
	candT   time.Duration
	cams    map[string]*camAcc
	order   []string // cameras in first-seen order
	samples *Samples
}

type camAcc struct {
	frames    int
	total     Counts
	classes   map[string]*Counts
	confusion map[[2]string]int
}

// NewAccumulator starts an accumulation at start; samples may be nil.
func NewAccumulator(start time.Time, samples *Samples) *Accumulator {
	return &Accumulator{start: start, cams: map[string]*camAcc{}, samples: samples}
}

// Add records one compared frame of a camera with both models' inference
// times.
func (a *Accumulator) Add(camera string, r FrameResult, serving, candidate time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.cams[camera]
	if c == nil {
		c = &camAcc{classes: map[string]*Counts{}, confusion: map[[2]string]int{}}
		a.cams[camera] = c
		a.order = append(a.order, camera)
	}
	fr := Counts{Serving: r.Serving, Candidate: r.Candidate, Matched: r.Matched, ScoreShift: r.ScoreShift}
	a.frames++
	a.total.add(fr)
	a.servT += serving
	a.candT += candidate
	c.frames++
	c.total.add(fr)
	for l, k := range r.Classes {
		cc := c.classes[l]
		if cc == nil {
			cc = &Counts{}
			c.classes[l] = cc
		}
		cc.add(*k)
	}
	for p, n := range r.Confusion {
		c.confusion[p] += n
	}
}

// Skip counts a sampled frame the CPU budget left uncompared.
func (a *Accumulator) Skip() {
	a.mu.Lock()
	a.skipped++
	a.mu.Unlock()
}

// Frames is the number of frames compared so far.
func (a *Accumulator) Frames() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.frames
}

// Report is the measurement so far; final adds the disagreement samples.
func (a *Accumulator) Report(now time.Time, final bool, minAgreement float64) api.ShadowReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := api.ShadowReport{
		Final: final, ElapsedS: max(now.Sub(a.start).Seconds(), 0), Frames: a.frames, Skipped: a.skipped,
		MinAgreement: minAgreement, ShadowStats: stats(a.total),
	}
	r.Agreement = r.F1
	if a.frames > 0 {
		r.ServingMs = ms(a.servT) / float64(a.frames)
		r.CandidateMs = ms(a.candT) / float64(a.frames)
		if r.ServingMs > 0 {
			r.LatencyRatio = r.CandidateMs / r.ServingMs
		}
	}
	all := map[[2]string]int{}
	for _, id := range a.order {
		c := a.cams[id]
		sc := api.ShadowCamera{Camera: id, Frames: c.frames, ShadowStats: stats(c.total)}
		for l, k := range c.classes {
			sc.Classes = append(sc.Classes, api.ShadowClass{Label: l, ShadowStats: stats(*k)})
		}
		slices.SortFunc(sc.Classes, func(x, y api.ShadowClass) int { return strings.Compare(x.Label, y.Label) })
		sc.Confusion = confusion(c.confusion)
		for p, n := range c.confusion {
			all[p] += n
		}
		r.Cameras = append(r.Cameras, sc)
	}
	r.Confusion = confusion(all)
	if final && a.samples != nil {
		r.Samples = a.samples.List()
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// stats turns counts into the wire figures.
func stats(c Counts) api.ShadowStats {
	s := api.ShadowStats{Serving: c.Serving, Candidate: c.Candidate, Matched: c.Matched}
	s.Precision, s.Recall, s.F1 = ratios(c.Serving, c.Candidate, c.Matched)
	switch {
	case c.Serving > 0:
		s.CountRatio = float64(c.Candidate) / float64(c.Serving)
	case c.Candidate == 0:
		s.CountRatio = 1 // nothing on either side
	}
	if c.Matched > 0 {
		s.ScoreShift = c.ScoreShift / float64(c.Matched)
	}
	return s
}

// confusion lists the pairs, most frequent first.
func confusion(m map[[2]string]int) []api.ShadowConfusion {
	out := make([]api.ShadowConfusion, 0, len(m))
	for p, n := range m {
		out = append(out, api.ShadowConfusion{Serving: p[0], Candidate: p[1], Count: n})
	}
	slices.SortFunc(out, func(x, y api.ShadowConfusion) int {
		return cmp.Or(y.Count-x.Count, strings.Compare(x.Serving, y.Serving), strings.Compare(x.Candidate, y.Candidate))
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// Passed says whether a final report meets its threshold; reason names the
// numbers when it does not. A phase that compared no frame does not pass.
func Passed(r api.ShadowReport) (ok bool, reason string) {
	if r.Frames == 0 {
		return false, fmt.Sprintf("shadow compared no frame in %.0f s (%d skipped by the CPU budget)", r.ElapsedS, r.Skipped)
	}
	if r.Agreement >= r.MinAgreement {
		return true, ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "shadow agreement %.2f below %.2f: precision %.2f recall %.2f over %d frames",
		r.Agreement, r.MinAgreement, r.Precision, r.Recall, r.Frames)
	if len(r.Confusion) > 0 {
		b.WriteString("; confusion")
		for i, c := range r.Confusion[:min(len(r.Confusion), 5)] {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s→%s %d", c.Serving, c.Candidate, c.Count)
		}
	}
	return false, b.String()
}
