// Package tracktest scores trackers against ground truth and makes the
// synthetic detection streams (with their truth) that the tests score.
//
// Score implements the standard multi-object tracking metrics:
//
//   - CLEAR-MOT (Bernardin & Stiefelhagen, "Evaluating Multiple Object
//     Tracking Performance: The CLEAR MOT Metrics", 2008): per frame, the
//     correspondences of the previous frame are kept while their IoU stays
//     at or above the threshold, the rest are matched by a minimum-cost
//     assignment on 1−IoU (pairs under the threshold forbidden); a truth
//     object matched to another hypothesis than at its last match is a
//     mismatch (ID switch). MOTA = 1 − (FN + FP + IDSW) / GT; MOTP is the
//     mean IoU of the matches (the overlap form: higher is better).
//   - ID metrics (Ristani et al., "Performance Measures and a Data Set for
//     Multi-Target, Multi-Camera Tracking", 2016): truth trajectories are
//     matched one-to-one to hypothesis trajectories by a global minimum-cost
//     bipartite matching whose cost is IDFN + IDFP; as IDFN = truth boxes −
//     IDTP and IDFP = hypothesis boxes − IDTP, that is the matching with the
//     most frames where the pair overlaps by the threshold (Hungarian on the
//     negated counts). IDP = IDTP/(IDTP+IDFP), IDR = IDTP/(IDTP+IDFN),
//     IDF1 = 2·IDTP/(2·IDTP+IDFP+IDFN).
package tracktest

import (
	"edgefleet/agent/track"
)

// Box is one object (truth) or one tracker output (hypothesis) in a frame.
type Box struct {
	ID  uint64
	Box [4]float32
}

// Frame is one frame's truth and hypotheses.
type Frame struct {
	Truth []Box
	Hyp   []Box
}

// Result holds the metrics and the counts they come from.
type Result struct {
	GT, Hyps, Matches, FP, FN, IDSW int
	MOTA, MOTP                      float64
	IDTP, IDFP, IDFN                int
	IDF1, IDP, IDR                  float64
}

// Score computes CLEAR-MOT and ID metrics over frames; a truth and a
// hypothesis box correspond when their IoU is at least minIoU (0.5 is usual).
func Score(frames []Frame, minIoU float64) Result {
	var r Result
	var iouSum float64
	last := map[uint64]uint64{} // truth id → hypothesis id at its last match
	prev := map[uint64]uint64{} // correspondences of the previous frame
	overlap := map[[2]uint64]int{}
	truthN := map[uint64]int{}
	hypN := map[uint64]int{}
	for _, f := range frames {
		r.GT += len(f.Truth)
		r.Hyps += len(f.Hyp)
		for _, t := range f.Truth {
			truthN[t.ID]++
		}
		for _, h := range f.Hyp {
			hypN[h.ID]++
		}
		// ID metrics: every overlapping pair counts, whatever CLEAR-MOT matched.
		for _, t := range f.Truth {
			for _, h := range f.Hyp {
				if float64(track.IoU(t.Box, h.Box)) >= minIoU {
					overlap[[2]uint64{t.ID, h.ID}]++
				}
			}
		}
		match := matchFrame(f, prev, minIoU)
		cur := map[uint64]uint64{}
		for ti, hi := range match {
			if hi < 0 {
				r.FN++
				continue
			}
			t, h := f.Truth[ti], f.Hyp[hi]
			r.Matches++
			iouSum += float64(track.IoU(t.Box, h.Box))
			if l, ok := last[t.ID]; ok && l != h.ID {
				r.IDSW++
			}
			last[t.ID] = h.ID
			cur[t.ID] = h.ID
		}
		r.FP += len(f.Hyp) - len(cur)
		prev = cur
	}
	if r.GT > 0 {
		r.MOTA = 1 - float64(r.FN+r.FP+r.IDSW)/float64(r.GT)
	}
	if r.Matches > 0 {
		r.MOTP = iouSum / float64(r.Matches)
	}
	r.IDTP = idtp(truthN, hypN, overlap)
	r.IDFN = r.GT - r.IDTP
	r.IDFP = r.Hyps - r.IDTP
	if d := r.IDTP + r.IDFP; d > 0 {
		r.IDP = float64(r.IDTP) / float64(d)
	}
	if d := r.IDTP + r.IDFN; d > 0 {
		r.IDR = float64(r.IDTP) / float64(d)
	}
	if d := 2*r.IDTP + r.IDFP + r.IDFN; d > 0 {
		r.IDF1 = 2 * float64(r.IDTP) / float64(d)
	}
	return r
}

// matchFrame returns, per truth box, the index of its hypothesis or -1.
func matchFrame(f Frame, prev map[uint64]uint64, minIoU float64) []int {
	match := make([]int, len(f.Truth))
	hypUsed := make([]bool, len(f.Hyp))
	for i := range match {
		match[i] = -1
	}
	// Keep last frame's correspondences that still hold.
	for ti, t := range f.Truth {
		h, ok := prev[t.ID]
		if !ok {
			continue
		}
		for hi, hb := range f.Hyp {
			if !hypUsed[hi] && hb.ID == h && float64(track.IoU(t.Box, hb.Box)) >= minIoU {
				match[ti], hypUsed[hi] = hi, true
				break
			}
		}
	}
	var rows, cols []int
	for ti := range f.Truth {
		if match[ti] < 0 {
			rows = append(rows, ti)
		}
	}
	for hi := range f.Hyp {
		if !hypUsed[hi] {
			cols = append(cols, hi)
		}
	}
	if len(rows) == 0 || len(cols) == 0 {
		return match
	}
	const forbidden = 1e6
	cost := make([][]float64, len(rows))
	for i, ti := range rows {
		cost[i] = make([]float64, len(cols))
		for j, hi := range cols {
			v := float64(track.IoU(f.Truth[ti].Box, f.Hyp[hi].Box))
			cost[i][j] = forbidden
			if v >= minIoU {
				cost[i][j] = 1 - v
			}
		}
	}
	for i, j := range Assign(cost) {
		if j >= 0 && cost[i][j] < forbidden {
			match[rows[i]] = cols[j]
		}
	}
	return match
}

// idtp is the most overlap frames of a one-to-one matching of truth ids to
// hypothesis ids.
func idtp(truthN, hypN map[uint64]int, overlap map[[2]uint64]int) int {
	if len(truthN) == 0 || len(hypN) == 0 {
		return 0
	}
	tIdx, hIdx := index(truthN), index(hypN)
	cost := make([][]float64, len(tIdx))
	for i := range cost {
		cost[i] = make([]float64, len(hIdx))
	}
	for k, n := range overlap {
		cost[tIdx[k[0]]][hIdx[k[1]]] = -float64(n)
	}
	total := 0
	for i, j := range Assign(cost) {
		if j >= 0 {
			total += int(-cost[i][j])
		}
	}
	return total
}

func index(m map[uint64]int) map[uint64]int {
	out := make(map[uint64]int, len(m))
	for id := range m {
		out[id] = len(out)
	}
	return out
}
