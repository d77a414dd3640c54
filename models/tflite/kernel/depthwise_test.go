package kernel

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDepthwiseAccS8 compares the kernel (assembly where the CPU has it)
// with the plain sum on channel counts with and without a 16-channel tail,
// 0 to 9 taps and extreme values.
func TestDepthwiseAccS8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []int{1, 7, 16, 17, 64, 80, 100} {
		for _, nt := range []int{0, 1, 4, 9} {
			src := make([]int8, c*12)
			for i := range src {
				src[i] = int8(r.IntN(256) - 128)
			}
			src[0], src[1] = -128, 127
			filt := make([]int32, c*9)
			for i := range filt {
				filt[i] = int32(r.IntN(256) - 128)
			}
			var taps []int32
			for t := 0; t < nt; t++ {
				taps = append(taps, int32(r.IntN(len(src)-c+1)), int32(r.IntN(9)*c))
			}
			zp := int32(r.IntN(256) - 128)
			acc := make([]int32, c)
			for i := range acc {
				acc[i] = int32(r.IntN(1 << 20))
			}
			want := slices.Clone(acc)
			for t := 0; t < nt; t++ {
				for i := range want {
					want[i] += (int32(src[int(taps[2*t])+i]) - zp) * filt[int(taps[2*t+1])+i]
				}
			}
			DepthwiseAccS8(acc, src, filt, taps, zp)
			if !slices.Equal(acc, want) {
				t.Errorf("c=%d taps=%d: got %v\nwant %v", c, nt, acc, want)
			}
		}
	}
}

func TestDepthwiseAccS8Bounds(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a tap past the source did not panic")
		}
	}()
	DepthwiseAccS8(make([]int32, 16), make([]int8, 20), make([]int32, 16), []int32{5, 0}, 0)
}

// TestDepthwiseAccF32 compares the float kernel with a float64 sum.
func TestDepthwiseAccF32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 4))
	for _, c := range []int{1, 16, 17, 80} {
		for _, nt := range []int{0, 1, 9} {
			src, filt := make([]float32, c*12), make([]float32, c*9)
			for i := range src {
				src[i] = float32(r.NormFloat64())
			}
			for i := range filt {
				filt[i] = float32(r.NormFloat64())
			}
			var taps []int32
			for t := 0; t < nt; t++ {
				taps = append(taps, int32(r.IntN(len(src)-c+1)), int32(r.IntN(9)*c))
			}
			acc := make([]float32, c)
			want := make([]float64, c)
			for i := range acc {
				acc[i] = float32(r.NormFloat64())
				want[i] = float64(acc[i])
			}
			for t := 0; t < nt; t++ {
				for i := range want {
					want[i] += float64(src[int(taps[2*t])+i]) * float64(filt[int(taps[2*t+1])+i])
				}
			}
			DepthwiseAccF32(acc, src, filt, taps)
			for i := range acc {
				if d := float64(acc[i]) - want[i]; d > 1e-5 || d < -1e-5 {
					t.Errorf("c=%d taps=%d: acc[%d] = %g, want %g", c, nt, i, acc[i], want[i])
				}
			}
		}
	}
}
