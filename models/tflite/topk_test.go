package tflite

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// TestTopKBest: the heap selection gives the first k of a stable
// descending sort, ties in index order, for k from 0 to all.
func TestTopKBest(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, c := range []struct{ d, k, distinct int }{{1, 1, 1}, {10, 0, 5}, {1000, 37, 20}, {24000, 300, 1000}, {50, 50, 7}} {
		key := make([]float64, c.d)
		for i := range key {
			key[i] = float64(r.IntN(c.distinct))
		}
		order := make([]int, c.d)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return key[order[a]] > key[order[b]] })
		tk := &topk{k: c.k}
		if got := tk.best(key); !slices.Equal(got, order[:c.k]) {
			t.Errorf("d=%d k=%d: %v, want %v", c.d, c.k, got, order[:c.k])
		}
	}
}
