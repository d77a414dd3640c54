package tracktest

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestAssignKnown(t *testing.T) {
	tests := []struct {
		name string
		cost [][]float64
		want []int
	}{
		{"3x3", [][]float64{{4, 1, 3}, {2, 0, 5}, {3, 2, 2}}, []int{1, 0, 2}},
		{"2x3", [][]float64{{5, 1, 9}, {1, 5, 9}}, []int{1, 0}},
		{"3x2 drops the dearest row", [][]float64{{1, 9}, {9, 1}, {5, 5}}, []int{0, 1, -1}},
		{"1x1", [][]float64{{7}}, []int{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Assign(tc.cost)
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Fatalf("Assign = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestAssignBruteForce checks optimality against every permutation.
func TestAssignBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		n := 1 + rng.IntN(5)
		m := n + rng.IntN(3)
		cost := make([][]float64, n)
		for i := range cost {
			cost[i] = make([]float64, m)
			for j := range cost[i] {
				cost[i][j] = float64(rng.IntN(20)) - 5
			}
		}
		got := Assign(cost)
		sum := 0.0
		seen := map[int]bool{}
		for i, j := range got {
			if j < 0 || seen[j] {
				t.Fatalf("Assign(%v) = %v: not a full matching", cost, got)
			}
			seen[j] = true
			sum += cost[i][j]
		}
		if best := brute(cost, 0, map[int]bool{}); math.Abs(best-sum) > 1e-9 {
			t.Fatalf("Assign(%v) = %v costs %v, optimum %v", cost, got, sum, best)
		}
	}
}

func brute(cost [][]float64, i int, used map[int]bool) float64 {
	if i == len(cost) {
		return 0
	}
	best := math.Inf(1)
	for j := range cost[i] {
		if used[j] {
			continue
		}
		used[j] = true
		best = min(best, cost[i][j]+brute(cost, i+1, used))
		used[j] = false
	}
	return best
}

var (
	boxA  = [4]float32{0, 0, 10, 10}
	boxB  = [4]float32{100, 100, 110, 110}
	boxA8 = [4]float32{0, 0, 10, 8} // IoU 0.8 with boxA
	boxA6 = [4]float32{0, 0, 10, 6} // IoU 0.6 with boxA
	boxA4 = [4]float32{0, 0, 10, 4} // IoU 0.4 with boxA
)

func fr(truth, hyp []Box) Frame { return Frame{Truth: truth, Hyp: hyp} }

// TestScoreHandComputed checks the metrics on cases worked out by hand.
func TestScoreHandComputed(t *testing.T) {
	A := func(b [4]float32) []Box { return []Box{{ID: 1, Box: b}} }
	H := func(id uint64, b [4]float32) Box { return Box{ID: id, Box: b} }
	tests := []struct {
		name   string
		frames []Frame
		want   Result
	}{
		{"perfect", []Frame{
			fr([]Box{{1, boxA}, {2, boxB}}, []Box{H(7, boxA), H(8, boxB)}),
			fr([]Box{{1, boxA}, {2, boxB}}, []Box{H(8, boxB), H(7, boxA)}),
		}, Result{GT: 4, Hyps: 4, Matches: 4, MOTA: 1, MOTP: 1, IDTP: 4, IDF1: 1, IDP: 1, IDR: 1}},
		// One object, its track changes id half way: one switch; the ID
		// matching keeps one of the two halves.
		{"id switch", []Frame{
			fr(A(boxA), []Box{H(1, boxA)}), fr(A(boxA), []Box{H(1, boxA)}),
			fr(A(boxA), []Box{H(2, boxA)}), fr(A(boxA), []Box{H(2, boxA)}),
		}, Result{GT: 4, Hyps: 4, Matches: 4, IDSW: 1, MOTA: 0.75, MOTP: 1, IDTP: 2, IDFP: 2, IDFN: 2, IDF1: 0.5, IDP: 0.5, IDR: 0.5}},
		// Two misses and one false positive over four frames.
		{"misses and a false positive", []Frame{
			fr(A(boxA), []Box{H(1, boxA), H(9, boxB)}), fr(A(boxA), []Box{H(1, boxA)}),
			fr(A(boxA), nil), fr(A(boxA), nil),
		}, Result{GT: 4, Hyps: 3, Matches: 2, FP: 1, FN: 2, MOTA: 0.25, MOTP: 1, IDTP: 2, IDFP: 1, IDFN: 2, IDF1: 4.0 / 7, IDP: 2.0 / 3, IDR: 0.5}},
		// IoU 0.8 matches (MOTP 0.8); IoU 0.4 is under the threshold: FN + FP.
		{"overlap threshold", []Frame{
			fr(A(boxA), []Box{H(1, boxA8)}), fr(A(boxA), []Box{H(1, boxA4)}),
		}, Result{GT: 2, Hyps: 2, Matches: 1, FP: 1, FN: 1, MOTA: 0, MOTP: 0.8, IDTP: 1, IDFP: 1, IDFN: 1, IDF1: 0.5, IDP: 0.5, IDR: 0.5}},
		// A correspondence still valid (IoU 0.6) is kept although another
		// hypothesis fits better (IoU 1): no switch.
		{"correspondence kept", []Frame{
			fr([]Box{{1, boxA}, {2, boxB}}, []Box{H(1, boxA), H(2, boxB)}),
			fr([]Box{{1, boxA}, {2, boxB}}, []Box{H(1, boxA6), H(2, boxA)}),
		}, Result{GT: 4, Hyps: 4, Matches: 3, FP: 1, FN: 1, MOTA: 0.5, MOTP: 2.6 / 3, IDTP: 3, IDFP: 1, IDFN: 1, IDF1: 0.75, IDP: 0.75, IDR: 0.75}},
		{"empty", nil, Result{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Score(tc.frames, 0.5)
			if !near(got, tc.want) {
				t.Fatalf("Score =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func near(a, b Result) bool {
	f := func(x, y float64) bool { return math.Abs(x-y) < 1e-6 }
	return a.GT == b.GT && a.Hyps == b.Hyps && a.Matches == b.Matches && a.FP == b.FP && a.FN == b.FN &&
		a.IDSW == b.IDSW && a.IDTP == b.IDTP && a.IDFP == b.IDFP && a.IDFN == b.IDFN &&
		f(a.MOTA, b.MOTA) && f(a.MOTP, b.MOTP) && f(a.IDF1, b.IDF1) && f(a.IDP, b.IDP) && f(a.IDR, b.IDR)
}
