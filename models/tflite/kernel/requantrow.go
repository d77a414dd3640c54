package kernel

import "fmt"

// RequantRow requantizes one row of int32 accumulators with a row offset
// and a per-channel offset: for j < q.N(),
//
//	out[j] = q requantizes acc[j] + add + colAdd[j] (channel j)
//
// the sums wrapping like int32. A product whose operands both have zero
// points (FULLY_CONNECTED on weights the graph computes) needs both
// offsets. AVX-512 on amd64 with the single rounding, plain Go otherwise.
// It panics when a slice is shorter than q.N() (a bug in the caller).
func (q *Requant) RequantRow(out []int8, acc []int32, add int32, colAdd []int32) {
	n := q.n
	if len(out) < n || len(acc) < n || len(colAdd) < n {
		panic(fmt.Sprintf("kernel: RequantRow: %d outputs, %d accumulators, %d offsets for %d channels", len(out), len(acc), len(colAdd), n))
	}
	if n == 0 {
		return
	}
	if hasConvRowArch && q.ruy {
		tail := tailMask(n)
		requantRowArch(&out[0], &acc[0], add, &colAdd[0], (n+15)/16, &q.vec[0], &q.consts[0], tail)
		return
	}
	for j, v := range acc[:n] {
		out[j] = q.apply(v+add+colAdd[j], j)
	}
}

// tailMask is the AVX-512 lane mask of the last vector of n values: all
// 16 lanes when n is a multiple of 16, else its n%16 low lanes.
func tailMask(n int) uint64 {
	if n%16 == 0 {
		return 0xffff
	}
	return 1<<(n%16) - 1
}
