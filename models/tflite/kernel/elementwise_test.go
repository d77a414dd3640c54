package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestLUT8x2 compares LUT8x2 (assembly where the CPU has it) with the plain
// loop on lengths with tails and on every pair of bytes, so the highest
// index (0xffff, whose four-byte read needs the padding) is used.
func TestLUT8x2(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	table := new([PairTableLen]byte)
	for i := range 1 << 16 {
		table[i] = byte(r.Uint32())
	}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 1 << 16} {
		a, b := make([]byte, n), make([]byte, n)
		for i := range a {
			a[i], b[i] = byte(r.Uint32()), byte(r.Uint32())
			if n == 1<<16 {
				a[i], b[i] = byte(i>>8), byte(i) // every pair: -128..127 both sides
			}
		}
		for _, c := range []struct {
			name string
			f    func(dst, a, b []byte, t *[PairTableLen]byte)
		}{{"lut8x2Go", lut8x2Go}, {"LUT8x2", LUT8x2}} {
			dst := make([]byte, n+1)
			c.f(dst, a, b, table)
			for i := range n {
				if want := table[int(a[i])<<8|int(b[i])]; dst[i] != want {
					t.Fatalf("%s n=%d: dst[%d] = %d for (%d, %d), want %d", c.name, n, i, dst[i], a[i], b[i], want)
				}
			}
			if dst[n] != 0 {
				t.Fatalf("%s n=%d wrote past the end", c.name, n)
			}
		}
	}
}

// BenchmarkLUT8x2 reports the cost per output byte of LUT8x2 and of the
// plain loop on a residual ADD's size (1x80x80x32) with random bytes.
func BenchmarkLUT8x2(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	table := new([PairTableLen]byte)
	for i := range table {
		table[i] = byte(i * 13)
	}
	n := 80 * 80 * 32
	x, y, dst := make([]byte, n), make([]byte, n), make([]byte, n)
	for i := range x {
		x[i], y[i] = byte(r.NormFloat64()*30), byte(r.NormFloat64()*30)
	}
	for _, c := range []struct {
		name string
		f    func(dst, a, b []byte, t *[PairTableLen]byte)
	}{{"go", lut8x2Go}, {"best", LUT8x2}} {
		b.Run(fmt.Sprintf("%s/%d", c.name, n), func(b *testing.B) {
			b.SetBytes(int64(n))
			cpu := onThread(func() {
				for b.Loop() {
					c.f(dst, x, y, table)
				}
			})
			reportNsPerByte(b, n, cpu)
		})
	}
}

// TestArithF32 compares ArithF32 (assembly where the CPU has it) with the
// plain loops and with Go's own min(max(a op b, lo), hi), for every
// operation, a vector and a single b, on lengths with tails and on values
// that test the clamp: ±0, NaN, ±Inf, the bounds themselves.
func TestArithF32(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	special := []float32{0, float32(math.Copysign(0, -1)), nan, inf, -inf, 6, -6, 1e30, -1e30, 1e-40}
	bounds := [][2]float32{{-inf, inf}, {0, inf}, {0, 6}, {-1, 1}}
	for _, n := range []int{1, 15, 16, 17, 33, 100, 1000} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(r.NormFloat64()*4), float32(r.NormFloat64()*4)
			if i%5 == 2 {
				a[i] = special[r.IntN(len(special))]
			}
			if i%7 == 3 {
				b[i] = special[r.IntN(len(special))]
			}
			if i%11 == 4 {
				b[i] = -a[i] // exact zeros from ADD: +0, and -0 for -0 + -0
			}
		}
		for _, bb := range [][]float32{b, b[:1], {float32(math.Copysign(0, -1))}} {
			for op := ArithAdd; op <= ArithSubFrom; op++ {
				for _, lh := range bounds {
					lo, hi := lh[0], lh[1]
					got, plain := make([]float32, n), make([]float32, n)
					ArithF32(op, got, a, bb, lo, hi)
					arithF32Go(op, plain, a, bb, lo, hi)
					for i, x := range a {
						y := bb[0]
						if len(bb) > 1 || n == 1 {
							y = bb[i]
						}
						var w float32
						switch op {
						case ArithAdd:
							w = x + y
						case ArithSub:
							w = x - y
						case ArithMul:
							w = x * y
						case ArithSubFrom:
							w = y - x
						}
						w = min(max(w, lo), hi)
						for _, g := range []struct {
							name string
							v    float32
						}{{"ArithF32", got[i]}, {"arithF32Go", plain[i]}} {
							if math.Float32bits(g.v) != math.Float32bits(w) && !(w != w && g.v != g.v) {
								t.Fatalf("%s op=%d n=%d lo=%g hi=%g: (%g, %g) → %g, want %g", g.name, op, n, lo, hi, x, y, g.v, w)
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkArithF32 reports the cost per output float of ArithF32 and of the
// plain loop: a residual ADD (1x80x80x16, same shape) and a MUL by one value.
func BenchmarkArithF32(b *testing.B) {
	n := 80 * 80 * 16
	x, y, dst := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range x {
		x[i], y[i] = float32(i%97)-48, float32(i%89)-44
	}
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		name string
		op   Arith
		y    []float32
	}{{"add", ArithAdd, y}, {"mul-scalar", ArithMul, y[:1]}} {
		for _, im := range []struct {
			name string
			f    func(op Arith, dst, a, b []float32, lo, hi float32)
		}{{"go", arithF32Go}, {"best", ArithF32}} {
			b.Run(fmt.Sprintf("%s/%s/%d", im.name, c.name, n), func(b *testing.B) {
				b.SetBytes(int64(4 * n))
				cpu := onThread(func() {
					for b.Loop() {
						im.f(c.op, dst, x, c.y, -inf, inf)
					}
				})
				reportNsPerByte(b, 4*n, cpu)
			})
		}
	}
}
