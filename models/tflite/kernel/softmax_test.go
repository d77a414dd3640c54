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
			SoftmaxInt8(got, src, c.d, table, float32(c.oscale), c.oz, c.lo, c.hi)
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
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				SoftmaxInt8(dst, src, s.d, table, 1.0/256, -128, -128, 127)
			}
		})
	}
}
