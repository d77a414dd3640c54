package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDequantF32 compares DequantF32 and BiasClampF32 (assembly where the
// CPU has it) bit for bit with their plain-Go twins, on rows with tails,
// extreme int32 sums (the subtraction wraps), signed zeros, NaN and
// infinities (BiasClampF32) and the activation ranges of TFLite.
func TestDequantF32(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	ranges := []struct{ lo, hi float32 }{
		{float32(math.Inf(-1)), float32(math.Inf(1))}, {0, float32(math.Inf(1))}, {0, 6}, {-1, 1},
	}
	special := []float32{0, float32(math.Copysign(0, -1)), 6, -1, 1, 1e-45, -1e-45, 3e38}
	for _, n := range []int{1, 3, 15, 16, 17, 32, 80, 129} {
		for _, rows := range []int{1, 2, 7} {
			acc := make([]int32, rows*n)
			corr := make([]int32, n)
			mul, bias := make([]float32, n), make([]float32, n)
			for i := range acc {
				acc[i] = int32(r.Uint32())
				if i%5 == 0 {
					acc[i] = int32(r.IntN(2001) - 1000)
				}
			}
			acc[0], acc[len(acc)-1] = math.MinInt32, math.MaxInt32
			for j := range corr {
				corr[j] = int32(r.Uint32())
				if j%3 == 0 {
					corr[j] = int32(r.IntN(201) - 100)
				}
				mul[j] = float32(r.ExpFloat64() * 1e-3)
				bias[j] = float32(r.NormFloat64())
				if j%4 == 1 {
					bias[j] = special[r.IntN(len(special))]
				}
			}
			o := make([]float32, rows*n)
			for i := range o {
				o[i] = float32(r.NormFloat64() * 4)
				if i%6 == 2 {
					o[i] = special[r.IntN(len(special))]
				}
			}
			o[0] = float32(math.NaN())
			if len(o) > 1 {
				o[1] = float32(math.Inf(-1))
			}
			for _, rg := range ranges {
				name := fmt.Sprintf("n=%d/rows=%d/lo=%g/hi=%g", n, rows, rg.lo, rg.hi)
				got, want := make([]float32, len(o)), make([]float32, len(o))
				DequantF32(got, acc, corr, mul, bias, rg.lo, rg.hi)
				dequantGo(want, acc, corr, mul, bias, rg.lo, rg.hi)
				sameBits(t, name+"/DequantF32", got, want)
				copy(got, o)
				copy(want, o)
				BiasClampF32(got, bias, rg.lo, rg.hi)
				biasClampGo(want, bias, rg.lo, rg.hi)
				sameBits(t, name+"/BiasClampF32", got, want)
			}
		}
	}
}

func sameBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("%s: [%d] = %g (%#x), want %g (%#x)", name, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			return
		}
	}
}

// BenchmarkDequantF32 is the float epilogue of a hybrid convolution tile
// (64 pixels × 64 channels) and of a float one.
func BenchmarkDequantF32(b *testing.B) {
	const rows, n = 64, 64
	acc, corr := make([]int32, rows*n), make([]int32, n)
	o, mul, bias := make([]float32, rows*n), make([]float32, n), make([]float32, n)
	for j := range mul {
		mul[j], bias[j] = 1e-3, 0.5
	}
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"hybrid/asm", func() { DequantF32(o, acc, corr, mul, bias, 0, 6) }},
		{"hybrid/go", func() { dequantGo(o, acc, corr, mul, bias, 0, 6) }},
		{"bias/asm", func() { BiasClampF32(o, bias, 0, 6) }},
		{"bias/go", func() { biasClampGo(o, bias, 0, 6) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.fn()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(rows*n), "ns/value")
		})
	}
}
