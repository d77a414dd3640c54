package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestSigmoid holds Sigmoid and SiLU (assembly where the CPU has it) and the
// plain-Go sigmoid to the exact value within 4 float32 ulps of the result
// (absolute 1e-37 near zero), on lengths that leave tails, and at the
// extremes where e^-x overflows float32.
func TestSigmoid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	special := []float32{0, -0, 1, -1, 87, -87, 88.4, -88.4, 89, -89, 100, -100, 1e10, -1e10, float32(math.Inf(1)), float32(math.Inf(-1)), 1e-30, -1e-30}
	for _, n := range []int{0, 1, 15, 16, 17, 100, 1023} {
		src := make([]float32, n)
		for i := range src {
			switch {
			case i < len(special) && n > 100:
				src[i] = special[i]
			default:
				src[i] = float32(r.NormFloat64() * 8)
			}
		}
		sig := make([]float32, n)
		for _, c := range []struct {
			name string
			f    func(dst, src []float32)
		}{{"sigmoidGo", sigmoidGo}, {"Sigmoid", Sigmoid}} {
			c.f(sig, src)
			for i, x := range src {
				if want := 1 / (1 + math.Exp(-float64(x))); !close32(sig[i], want) {
					t.Errorf("%s(%g) = %g, want %g (n=%d, i=%d)", c.name, x, sig[i], want, n, i)
				}
			}
		}
		// SiLU is exactly the MUL of x by Sigmoid(x) it replaces.
		silu := make([]float32, n)
		SiLU(silu, src)
		for i, x := range src {
			if want := x * sig[i]; silu[i] != want && !(want != want && silu[i] != silu[i]) {
				t.Errorf("SiLU(%g) = %g, want %g (n=%d, i=%d)", x, silu[i], want, n, i)
			}
		}
	}
}

func close32(got float32, want float64) bool {
	if math.IsInf(want, 0) || math.IsNaN(want) {
		return float64(got) == want
	}
	d := math.Abs(float64(got) - want)
	ulp := math.Abs(want) * 0x1p-23
	return d <= 4*ulp || d <= 1e-37
}

// BenchmarkSigmoid times Sigmoid, SiLU and Exp on a convolution tile
// (64 pixels × 128 channels, in cache) and on a whole 80×80×64 tensor, per
// float in wall and thread CPU time.
func BenchmarkSigmoid(b *testing.B) {
	for _, f := range []struct {
		name string
		f    func(dst, src []float32)
	}{{"Sigmoid", Sigmoid}, {"SiLU", SiLU}, {"Exp", Exp}} {
		for _, n := range []int{64 * 128, 80 * 80 * 64} {
			src := make([]float32, n)
			for i := range src {
				src[i] = float32(i%200-100) / 10
			}
			dst := make([]float32, n)
			b.Run(fmt.Sprintf("%s/%d", f.name, n), func(b *testing.B) {
				f.f(dst, src)
				cpu := onThread(func() {
					for b.Loop() {
						f.f(dst, src)
					}
				})
				floats := float64(n) * float64(b.N)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/floats, "ns/float")
				if cpu > 0 {
					b.ReportMetric(float64(cpu.Nanoseconds())/floats, "cpu-ns/float")
				}
			})
		}
	}
}

// TestExp holds Exp (assembly where the CPU has it) to math.Exp within 4
// ulps on [-87, 88], on lengths with tails.
func TestExp(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{1, 16, 31, 1000} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(r.Float64()*175 - 87)
		}
		src[0] = 0
		dst := make([]float32, n)
		Exp(dst, src)
		for i, x := range src {
			if want := math.Exp(float64(x)); !close32(dst[i], want) {
				t.Errorf("Exp(%g) = %g, want %g", x, dst[i], want)
			}
		}
	}
}
