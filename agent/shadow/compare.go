// Package shadow evaluates a candidate model beside the serving one on the
// same live frames (issue 14): it matches the two models' boxes frame by
// frame, accumulates per camera and per class statistics into an
// api.ShadowReport, keeps the frames where the two disagree most as
// side-by-side JPEGs, and runs the candidate within a CPU budget from a tap
// on the pipeline, so the serving path never waits for it.
//
// The serving model is the reference: the candidate's precision is
// matched/candidate boxes, its recall matched/serving boxes. Two boxes match
// when they name the same class (by label, by class id when a model has no
// labels) and overlap with IoU >= 0.5, greedily by descending candidate
// score. Where a side has no boxes the ratios are defined so that agreeing on
// nothing is full agreement: precision is 1 when the candidate found
// nothing, recall is 1 when the serving model found nothing, and F1 is 1 when
// both found nothing.
package shadow

import (
	"slices"
	"strconv"

	"edgefleet/models"
)

// MinIoU is the overlap two boxes need to be compared at all.
const MinIoU = 0.5

// FrameResult is the comparison of one frame's two detection lists.
type FrameResult struct {
	Serving, Candidate int
	Matched            int
	// ScoreShift is the sum over matches of candidate minus serving score.
	ScoreShift float64
	// Classes counts per serving class (by label) and, for the candidate's
	// unmatched boxes, per candidate class.
	Classes map[string]*Counts
	// Confusion counts boxes that overlap (IoU >= MinIoU) but name
	// different classes: serving label → candidate label.
	Confusion map[[2]string]int
}

// Counts are the counts that make a ShadowStats.
type Counts struct {
	Serving, Candidate, Matched int
	ScoreShift                  float64 // sum over matches
}

func (c *Counts) add(o Counts) {
	c.Serving += o.Serving
	c.Candidate += o.Candidate
	c.Matched += o.Matched
	c.ScoreShift += o.ScoreShift
}

// F1 is the frame's agreement (1 when both sides are empty).
func (r FrameResult) F1() float64 {
	_, _, f1 := ratios(r.Serving, r.Candidate, r.Matched)
	return f1
}

// label names a detection's class: its label, else its class id.
func label(d models.Detection) string {
	if d.Label != "" {
		return d.Label
	}
	return "#" + strconv.Itoa(d.ClassID)
}

// IoU is the intersection over union of two x1,y1,x2,y2 boxes.
func IoU(a, b [4]float32) float64 {
	ix := min(a[2], b[2]) - max(a[0], b[0])
	iy := min(a[3], b[3]) - max(a[1], b[1])
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := float64(ix) * float64(iy)
	area := func(r [4]float32) float64 { return float64(max(r[2]-r[0], 0)) * float64(max(r[3]-r[1], 0)) }
	u := area(a) + area(b) - inter
	if u <= 0 {
		return 0
	}
	return inter / u
}

// Compare matches one frame's candidate boxes against the serving model's.
// Candidate boxes are taken in descending score order; each takes the
// unmatched serving box of its class with the highest IoU >= MinIoU. Boxes
// left unmatched on both sides are then paired the same way regardless of
// class, and those pairs count as confusion.
func Compare(serving, candidate []models.Detection) FrameResult {
	r := FrameResult{Serving: len(serving), Candidate: len(candidate), Classes: map[string]*Counts{}}
	cls := func(l string) *Counts {
		c := r.Classes[l]
		if c == nil {
			c = &Counts{}
			r.Classes[l] = c
		}
		return c
	}
	for _, s := range serving {
		cls(label(s)).Serving++
	}
	order := make([]int, len(candidate))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case candidate[a].Score > candidate[b].Score:
			return -1
		case candidate[a].Score < candidate[b].Score:
			return 1
		}
		return 0
	})
	usedS := make([]bool, len(serving))
	usedC := make([]bool, len(candidate))
	// best finds the free serving box with the highest IoU >= MinIoU, of
	// the candidate's class when sameClass.
	best := func(c models.Detection, sameClass bool) int {
		bi, bv := -1, MinIoU
		for i, s := range serving {
			if usedS[i] || (sameClass && label(s) != label(c)) {
				continue
			}
			if v := IoU(s.Box, c.Box); v >= bv {
				bi, bv = i, v
			}
		}
		return bi
	}
	for _, ci := range order {
		c := candidate[ci]
		if si := best(c, true); si >= 0 {
			usedS[si], usedC[ci] = true, true
			shift := float64(c.Score) - float64(serving[si].Score)
			r.Matched++
			r.ScoreShift += shift
			k := cls(label(c))
			k.Candidate++
			k.Matched++
			k.ScoreShift += shift
		}
	}
	for _, ci := range order {
		if usedC[ci] {
			continue
		}
		c := candidate[ci]
		cls(label(c)).Candidate++
		if si := best(c, false); si >= 0 {
			usedS[si], usedC[ci] = true, true
			if r.Confusion == nil {
				r.Confusion = map[[2]string]int{}
			}
			r.Confusion[[2]string{label(serving[si]), label(c)}]++
		}
	}
	return r
}

// ratios are precision, recall and F1 of the candidate against the serving
// model, with the empty cases defined as agreement (package doc).
func ratios(serving, candidate, matched int) (p, r, f1 float64) {
	p, r = 1, 1
	if candidate > 0 {
		p = float64(matched) / float64(candidate)
	}
	if serving > 0 {
		r = float64(matched) / float64(serving)
	}
	if p+r > 0 {
		f1 = 2 * p * r / (p + r)
	}
	return p, r, f1
}
