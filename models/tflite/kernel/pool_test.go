package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestPoolKernels holds MaxInt8, MaxF32, ClampInt8 and ClampF32 (assembly
// where the CPU has it) to their plain-Go twins, bit for bit, on lengths
// with tails and on the edge values (-128, 127, ±0, ±Inf, NaN; a NaN only
// as a NaN: Go's min and max do not keep its payload the same way in every
// build).
func TestPoolKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	i8edge := []int8{-128, 127, 0, -1, 1}
	nan := float32(math.NaN())
	fedge := []float32{0, float32(math.Copysign(0, -1)), nan, float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.MaxFloat32, 6, -1, 1}
	for _, n := range []int{1, 15, 16, 17, 63, 64, 65, 127, 128, 200, 1000} {
		a8, b8 := make([]int8, n), make([]int8, n)
		af, bf := make([]float32, n), make([]float32, n)
		for i := range n {
			a8[i], b8[i] = int8(r.IntN(256)-128), int8(r.IntN(256)-128)
			af[i], bf[i] = float32(r.NormFloat64()*4), float32(r.NormFloat64()*4)
			if r.IntN(4) == 0 {
				a8[i], b8[i] = i8edge[r.IntN(len(i8edge))], i8edge[r.IntN(len(i8edge))]
				af[i], bf[i] = fedge[r.IntN(len(fedge))], fedge[r.IntN(len(fedge))]
			}
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			got, want := append([]int8(nil), a8...), append([]int8(nil), a8...)
			MaxInt8(got, b8)
			maxInt8Go(want, b8)
			sameI8(t, "MaxInt8", got, want)
			for _, lh := range [][2]int8{{-128, 127}, {-100, 100}, {0, 127}, {-128, -128}, {127, 127}} {
				got, want = append([]int8(nil), a8...), append([]int8(nil), a8...)
				ClampInt8(got, lh[0], lh[1])
				clampInt8Go(want, lh[0], lh[1])
				sameI8(t, fmt.Sprint("ClampInt8", lh), got, want)
			}
			gf, wf := append([]float32(nil), af...), append([]float32(nil), af...)
			MaxF32(gf, bf)
			maxF32Go(wf, bf)
			sameF32(t, "MaxF32", gf, wf)
			for _, lh := range [][2]float32{{-math.MaxFloat32, math.MaxFloat32}, {-1, 1}, {0, 6}, {0, math.MaxFloat32}} {
				gf, wf = append([]float32(nil), af...), append([]float32(nil), af...)
				ClampF32(gf, lh[0], lh[1])
				clampF32Go(wf, lh[0], lh[1])
				sameF32(t, fmt.Sprint("ClampF32", lh), gf, wf)
			}
		})
	}
}

func sameI8(t *testing.T, what string, got, want []int8) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: [%d] = %d, want %d", what, i, got[i], want[i])
		}
	}
}

func sameF32(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
			t.Fatalf("%s: [%d] = %g (%#x), want %g (%#x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// BenchmarkMaxInt8 is the row maximum of the SPPF's 5x5 max pools: 20 pixels
// of 128 channels.
func BenchmarkMaxInt8(b *testing.B) {
	dst, src := make([]int8, 20*128), make([]int8, 20*128)
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		MaxInt8(dst, src)
	}
}
