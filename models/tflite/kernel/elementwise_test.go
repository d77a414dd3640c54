package kernel

import (
	"fmt"
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
