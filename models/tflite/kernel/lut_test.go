package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestLUT8 compares LUT8 (assembly where the CPU has it) with the plain
// loop and with a byte-at-a-time lookup, on lengths with tails, on every
// byte value (so both table halves and the 0x7f/0x80 edge are used), and in
// place.
func TestLUT8(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var table [256]byte
	for i := range table {
		table[i] = byte(r.Uint32())
	}
	for _, n := range []int{0, 1, 7, 63, 64, 65, 127, 128, 129, 191, 256, 1000, 4099} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(r.Uint32())
			if i < 256 && n >= 256 {
				src[i] = byte(i) // every value, including 0x7f, 0x80, 0xff
			}
		}
		want := make([]byte, n)
		for i, v := range src {
			want[i] = table[v]
		}
		for _, c := range []struct {
			name string
			f    func(dst, src []byte, t *[256]byte)
		}{{"lut8Go", lut8Go}, {"LUT8", LUT8}} {
			dst := make([]byte, n+3)
			c.f(dst, src, &table)
			for i := range want {
				if dst[i] != want[i] {
					t.Fatalf("%s n=%d: dst[%d] = %d for %d, want %d", c.name, n, i, dst[i], src[i], want[i])
				}
			}
			if dst[n] != 0 || dst[n+1] != 0 || dst[n+2] != 0 {
				t.Fatalf("%s n=%d wrote past the end", c.name, n)
			}
		}
		inPlace := append([]byte(nil), src...)
		LUT8(inPlace, inPlace, &table)
		for i := range want {
			if inPlace[i] != want[i] {
				t.Fatalf("in place n=%d: dst[%d] = %d, want %d", n, i, inPlace[i], want[i])
			}
		}
	}
}

// BenchmarkLUT8 reports the byte rate of LUT8 and of the plain loop on a
// SiLU-sized tensor (1x80x80x64) and a cache-resident one.
func BenchmarkLUT8(b *testing.B) {
	var table [256]byte
	for i := range table {
		table[i] = byte(255 - i)
	}
	for _, n := range []int{16 << 10, 80 * 80 * 64} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(i * 7)
		}
		dst := make([]byte, n)
		for _, c := range []struct {
			name string
			f    func(dst, src []byte, t *[256]byte)
		}{{"go", lut8Go}, {"best", LUT8}} {
			b.Run(fmt.Sprintf("%s/%d", c.name, n), func(b *testing.B) {
				b.SetBytes(int64(n))
				cpu := onThread(func() {
					for b.Loop() {
						c.f(dst, src, &table)
					}
				})
				reportNsPerByte(b, n, cpu)
			})
		}
	}
}
