package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRequantRow compares RequantRow (assembly where the CPU has it) with
// the per-channel formula on channel counts with and without a 16-channel
// tail, accumulators and offsets that wrap, both roundings.
func TestRequantRow(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{1, 15, 16, 17, 64, 400} {
		for _, ruy := range []bool{true, false} {
			bias, mult, shift := make([]int32, n), make([]int32, n), make([]int32, n)
			for j := range bias {
				bias[j] = int32(r.IntN(1<<20) - 1<<19)
				mult[j] = 1<<30 + int32(r.IntN(1<<30))
				shift[j] = int32(r.IntN(30) - 25)
			}
			newRq, mbqm := NewRequant, MultiplyByQuantizedMultiplier
			if ruy {
				newRq, mbqm = NewRequantRuy, MultiplyByQuantizedMultiplierRuy
			}
			q, err := newRq(n, bias, mult, shift, -9, -100, 127)
			if err != nil {
				t.Fatal(err)
			}
			for _, add := range []int32{0, -12345, math.MaxInt32} {
				acc, colAdd := make([]int32, n), make([]int32, n)
				for j := range acc {
					acc[j] = int32(r.IntN(1<<24) - 1<<23)
					colAdd[j] = int32(r.IntN(1<<16) - 1<<15)
				}
				acc[0], colAdd[n-1] = math.MinInt32, math.MaxInt32
				want := make([]int8, n+1)
				for j := range acc {
					v := mbqm(acc[j]+add+colAdd[j]+bias[j], mult[j], int(shift[j])) - 9
					want[j] = int8(max(-100, min(127, v)))
				}
				got := make([]int8, n+1)
				q.RequantRow(got, acc, add, colAdd)
				if !slices.Equal(got, want) {
					t.Errorf("n=%d ruy=%v add=%d:\n got %v\nwant %v", n, ruy, add, got, want)
				}
			}
		}
	}
}

// BenchmarkRequantRow requantizes the 400×400 attention product of yolo11n
// row by row.
func BenchmarkRequantRow(b *testing.B) {
	const m, n = 400, 400
	mult, shift := make([]int32, n), make([]int32, n)
	for j := range mult {
		mult[j], shift[j] = 1<<30, -9
	}
	q, _ := NewRequantRuy(n, nil, mult, shift, 0, -128, 127)
	acc, colAdd, out := make([]int32, m*n), make([]int32, n), make([]int8, m*n)
	all := func() {
		for i := 0; i < m; i++ {
			q.RequantRow(out[i*n:], acc[i*n:], int32(i), colAdd)
		}
	}
	b.Run(fmt.Sprintf("%dx%d", m, n), func(b *testing.B) {
		all() // warm caches: make bench runs once
		for b.Loop() {
			all()
		}
	})
}
