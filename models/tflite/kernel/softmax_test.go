package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// softmaxTable is the int8 softmax's table as the interpreter makes it.
func softmaxTable(scale, beta float64) *[256]float32 {
	t := new([256]float32)
	sc := float32(-scale * beta)
	for v := range 256 {
		t[255-v] = float32(math.Exp(float64(sc * float32(v))))
	}
	return t
}

// TestSoftmaxInt8 holds SoftmaxInt8 (assembly where the CPU has it) to the
// plain-Go rows, byte for byte: row lengths with and without tails, row
// counts with a partial block, rows of -128s, of 127s and of both, and
// output quantizations besides TFLite's 1/256, -128.
func TestSoftmaxInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		d, rows       int
		scale, oscale float64
		oz, lo, hi    int32
	}{
		{16, 64, 0.1, 1.0 / 256, -128, -128, 127},
		{16, 37, 0.05, 1.0 / 256, -128, -128, 127},
		{17, 33, 0.2, 1.0 / 256, -128, -128, 127},
		{400, 32, 0.02, 1.0 / 256, -128, -128, 127},
		{65, 16, 1, 1.0 / 255, -100, -100, 127},
		{31, 20, 0.003, 0.01, 3, -128, 127},
		{16, 15, 0.1, 1.0 / 256, -128, -128, 127},
		{8, 40, 0.1, 1.0 / 256, -128, -128, 127},
		{100, 48, 0.07, 0.5, 0, -128, 127},
	} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			src := make([]int8, c.d*c.rows)
			for i := range src {
				src[i] = int8(r.IntN(256) - 128)
			}
			for row := 0; row < c.rows; row++ {
				x := src[row*c.d:][:c.d]
				switch row % 5 {
				case 1:
					for i := range x {
						x[i] = -128
					}
				case 2:
					for i := range x {
						x[i] = 127
					}
				case 3:
					for i := range x {
						x[i] = []int8{-128, 127}[i%2]
					}
				}
			}
			table := softmaxTable(c.scale, 1)
			got, want := make([]int8, len(src)), make([]int8, len(src))
			SoftmaxInt8(got, src, c.d, table, float32(c.oscale), c.oz, c.lo, c.hi, nil)
			softmaxInt8Go(want, src, c.d, table, float32(c.oscale), c.oz, c.lo, c.hi)
			sameI8(t, "SoftmaxInt8", got, want)
		})
	}
}

// BenchmarkSoftmaxInt8 is the two softmaxes of yolo11n: the DFL's
// 4·8400 rows of 16 and the attention's 2·400 rows of 400.
func BenchmarkSoftmaxInt8(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	table := softmaxTable(0.1, 1)
	for _, s := range []struct {
		name    string
		rows, d int
	}{{"dfl_33600x16", 33600, 16}, {"attn_800x400", 800, 400}} {
		src, dst := make([]int8, s.rows*s.d), make([]int8, s.rows*s.d)
		for i := range src {
			src[i] = int8(r.IntN(256) - 128)
		}
		scratch := make([]float32, 16*s.d)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				SoftmaxInt8(dst, src, s.d, table, 1.0/256, -128, -128, 127, scratch)
			}
		})
	}
}

// TestSoftmaxF32 holds SoftmaxF32Prep and SoftmaxF32Norm (assembly where
// the CPU has it) to their plain-Go twins: the prepared arguments equal
// (a NaN as a NaN), and after Exp the normalised rows bit for bit, on row
// lengths and counts with tails, rows with ±Inf, -0, NaN and equal values.
func TestSoftmaxF32(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	nan := float32(math.NaN())
	for _, c := range []struct{ d, rows int }{{16, 64}, {16, 37}, {17, 20}, {400, 18}, {3, 40}, {1, 17}, {33, 5}} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			src := make([]float32, c.d*c.rows)
			for i := range src {
				src[i] = float32(r.NormFloat64() * 5)
			}
			for row := 0; row < c.rows; row++ {
				x := src[row*c.d:][:c.d]
				switch row % 7 {
				case 1:
					x[r.IntN(c.d)] = nan
				case 2:
					x[r.IntN(c.d)] = float32(math.Inf(1))
				case 3:
					for i := range x {
						x[i] = float32(math.Copysign(0, -1))
					}
				case 4:
					for i := range x {
						x[i] = 2.5
					}
				case 5:
					x[r.IntN(c.d)] = float32(math.Inf(-1))
				}
			}
			for _, beta := range []float32{1, 0.5} {
				got, want := make([]float32, len(src)), make([]float32, len(src))
				SoftmaxF32Prep(got, src, c.d, beta)
				softmaxF32PrepGo(want, src, c.d, beta)
				sameF32(t, "SoftmaxF32Prep", got, want)
				Exp(got, got)
				Exp(want, want)
				SoftmaxF32Norm(got, c.d)
				softmaxF32NormGo(want, c.d)
				sameF32(t, "SoftmaxF32Norm", got, want)
			}
		})
	}
}

// BenchmarkSoftmaxF32 is the hybrid model's float32 DFL softmax, 4·8400
// rows of 16: the argument, the exponential and the normalisation.
func BenchmarkSoftmaxF32(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	src, dst := make([]float32, 33600*16), make([]float32, 33600*16)
	for i := range src {
		src[i] = float32(r.NormFloat64() * 4)
	}
	b.SetBytes(4 * int64(len(src)))
	for b.Loop() {
		SoftmaxF32Prep(dst, src, 16, 1)
		Exp(dst, dst)
		SoftmaxF32Norm(dst, 16)
	}
}
