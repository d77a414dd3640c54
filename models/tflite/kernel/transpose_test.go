package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestTransposeBytes holds TransposeBytes and Transpose32 (assembly tiles
// where the CPU has them) to the definition dst[c·rows+r] = src[r·cols+c], on shapes with
// and without partial tiles on either edge.
func TestTransposeBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, rows := range []int{1, 3, 15, 16, 17, 32, 47, 144} {
		for _, cols := range []int{1, 15, 16, 17, 33, 64, 100} {
			src := make([]byte, rows*cols)
			for i := range src {
				src[i] = byte(r.IntN(256))
			}
			dst := make([]byte, len(src)+1)
			dst[len(src)] = 0xa5
			TransposeBytes(dst, src, rows, cols)
			for i, b := range src {
				rr, c := i/cols, i%cols
				if got := dst[c*rows+rr]; got != b {
					t.Fatalf("%dx%d: [%d][%d] = %d, want %d", rows, cols, c, rr, got, b)
				}
			}
			if dst[len(src)] != 0xa5 {
				t.Fatalf("%dx%d: wrote past the end", rows, cols)
			}
			src32, dst32 := make([]int32, rows*cols), make([]int32, rows*cols+1)
			for i := range src32 {
				src32[i] = int32(r.Uint32())
			}
			dst32[len(src32)] = -1
			Transpose32(dst32, src32, rows, cols)
			for i, v := range src32 {
				rr, c := i/cols, i%cols
				if got := dst32[c*rows+rr]; got != v {
					t.Fatalf("%dx%d int32: [%d][%d] = %d, want %d", rows, cols, c, rr, got, v)
				}
			}
			if dst32[len(src32)] != -1 {
				t.Fatalf("%dx%d int32: wrote past the end", rows, cols)
			}
		}
	}
}

// BenchmarkTransposeBytes are yolo's int8 transposes: NHWC to NCHW of the
// head's 80×80×144, the DFL's 16×8400 and the attention's 400×400.
func BenchmarkTransposeBytes(b *testing.B) {
	for _, s := range []struct{ rows, cols int }{{6400, 144}, {16, 8400}, {400, 400}} {
		src, dst := make([]byte, s.rows*s.cols), make([]byte, s.rows*s.cols)
		b.Run(fmt.Sprintf("%dx%d", s.rows, s.cols), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				TransposeBytes(dst, src, s.rows, s.cols)
			}
		})
	}
}

// BenchmarkTranspose32 is the hybrid model's float32 NHWC to NCHW of the
// head's 80×80×144.
func BenchmarkTranspose32(b *testing.B) {
	src, dst := make([]int32, 6400*144), make([]int32, 6400*144)
	b.SetBytes(4 * int64(len(src)))
	for b.Loop() {
		Transpose32(dst, src, 6400, 144)
	}
}
