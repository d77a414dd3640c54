package kernel

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestQuantizeF32 compares MinMaxF32 and QuantizeF32 (assembly where the CPU
// has it) with plain loops, on lengths with tails, exact halves (which round
// away from zero) and values past the int8 range.
func TestQuantizeF32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 15, 16, 17, 250, 4099} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(r.NormFloat64() * 40)
			if i%7 == 3 {
				src[i] = float32(r.IntN(300)-150) + 0.5 // exact halves once scaled by 1
			}
		}
		if n > 100 {
			src[50], src[51] = 1e30, -1e30
		}
		lo, hi := MinMaxF32(src)
		wl, wh := src[0], src[0]
		for _, v := range src {
			wl, wh = min(wl, v), max(wh, v)
		}
		if lo != wl || hi != wh {
			t.Errorf("n=%d: MinMaxF32 = %g, %g, want %g, %g", n, lo, hi, wl, wh)
		}
		for _, c := range []struct{ inv, zp float32 }{{1, 0}, {0.73, -5}, {3.1, 17}} {
			dst := make([]int8, n)
			QuantizeF32(dst, src, c.inv, c.zp)
			for i, v := range src {
				x := float64(c.zp + float32(v*c.inv))
				want := int8(math.Max(-128, math.Min(127, math.Round(x))))
				if dst[i] != want {
					t.Errorf("n=%d inv=%g zp=%g: quantize(%g) = %d, want %d", n, c.inv, c.zp, v, dst[i], want)
				}
			}
		}
	}
}
