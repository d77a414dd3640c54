package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// fillF32Edges fills v with random values in [-1, 1) mixed with the values
// that could tell two summation orders apart: signed zeros, exact
// cancellations, large and tiny magnitudes.
func fillF32Edges(r *rand.Rand, v []float32) {
	edges := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1e30, -1e30, 1e-30, 3.5e-38, 0.1, -0.1}
	for i := range v {
		if r.IntN(4) == 0 {
			v[i] = edges[r.IntN(len(edges))]
		} else {
			v[i] = r.Float32()*2 - 1
		}
	}
}

// TestGemmF32AccSplitsExactly checks GemmAcc's and GemmSegs' contracts on
// every implementation: clearing c and running GemmAcc over runs of the
// columns of A (rows overlapping, read in place with lda < k as the float
// convolution does), or GemmSegs over all runs at once, gives Gemm over the
// copied matrix, bit for bit, including the sign of zero.
func TestGemmF32AccSplitsExactly(t *testing.T) {
	type tcase struct{ m, n, run, runs, lda, padC int }
	cases := []tcase{
		{320, 16, 9, 3, 6, 0}, // yolov8n's stem row: 3 filter rows of 3x3 taps of 3 channels, stride 2
		{160, 16, 9, 3, 6, 0},
		{17, 16, 9, 3, 3, 1},
		{13, 8, 4, 2, 1, 0},
		{7, 5, 3, 5, 0, 2}, // lda 0: every row reads the same values (zero padding rows)
		{1, 1, 1, 1, 1, 0},
		{29, 37, 15, 2, 15, 3},
		{12, 24, 27, 1, 30, 0},
		{6, 33, 2, 4, 2, 1},
		{31, 17, 5, 3, 4, 0},
	}
	for _, im := range f32Impls {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%v/m%d_n%d_k%dx%d_lda%d", im, tc.m, tc.n, tc.run, tc.runs, tc.lda), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(tc.m), uint64(tc.n)))
				k, ldc := tc.run*tc.runs, tc.n+tc.padC
				// Each run r reads the image img at offset r·off with
				// row step lda; the exact-size slice catches reads past it.
				off := (tc.m-1)*tc.lda + tc.run
				img := make([]float32, tc.runs*off)
				fillF32Edges(r, img)
				b := make([]float32, tc.n*k)
				fillF32Edges(r, b)
				// The matrix A that Gemm sees: row i is the runs' rows i.
				a := make([]float32, tc.m*k)
				for i := 0; i < tc.m; i++ {
					for q := 0; q < tc.runs; q++ {
						copy(a[i*k+q*tc.run:i*k+(q+1)*tc.run], img[q*off+i*tc.lda:])
					}
				}
				want := make([]float32, (tc.m-1)*ldc+tc.n)
				packF32(im, tc.n, k, b).Gemm(tc.m, a, k, want, ldc)
				got := make([]float32, len(want))
				for i := range got {
					got[i] = sentinel
				}
				for i := 0; i < tc.m; i++ {
					clear(got[i*ldc : i*ldc+tc.n])
				}
				for q := 0; q < tc.runs; q++ {
					bq := make([]float32, tc.n*tc.run)
					for j := 0; j < tc.n; j++ {
						copy(bq[j*tc.run:(j+1)*tc.run], b[j*k+q*tc.run:])
					}
					packF32(im, tc.n, tc.run, bq).GemmAcc(tc.m, img[q*off:(q+1)*off], tc.lda, got, ldc)
				}
				checkSame(t, "GemmAcc", got, want, tc.n, ldc)
				// GemmSegs reads the same runs in one call: the image's
				// runs are off apart.
				for i := range got {
					got[i] = sentinel
				}
				packF32(im, tc.n, k, b).GemmSegs(tc.m, img, tc.lda, tc.runs, off, got, ldc)
				checkSame(t, "GemmSegs", got, want, tc.n, ldc)
			})
		}
	}
}

// checkSame fails unless got's first n columns are want's bit for bit and
// its columns past n still hold the sentinel.
func checkSame(t *testing.T, what string, got, want []float32, n, ldc int) {
	t.Helper()
	for i := range got {
		if i%ldc >= n {
			if got[i] != sentinel {
				t.Fatalf("c[%d][%d] = %g: written outside n", i/ldc, i%ldc, got[i])
			}
			continue
		}
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: c[%d][%d] = %g (%#x), Gemm gives %g (%#x)", what, i/ldc, i%ldc, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

func TestGemmF32AccBadSizesPanic(t *testing.T) {
	p := PackF32(2, 3, make([]float32, 6))
	for _, f := range []func(){
		func() { p.GemmAcc(2, make([]float32, 4), 2, make([]float32, 4), 2) }, // a short: needs lda+k = 5
		func() { p.GemmAcc(2, make([]float32, 5), 2, make([]float32, 3), 2) }, // c short
		func() { p.GemmAcc(2, make([]float32, 5), -1, make([]float32, 4), 2) },
		func() { p.GemmAcc(1, make([]float32, 3), 3, make([]float32, 1), 1) }, // ldc < n
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
	p.GemmAcc(2, make([]float32, 5), 2, make([]float32, 4), 2) // exactly enough
	for _, f := range []func(){
		func() { p.GemmSegs(1, make([]float32, 3), 1, 2, 1, make([]float32, 2), 2) },  // k 3 in 2 segments
		func() { p.GemmSegs(2, make([]float32, 10), 2, 3, 4, make([]float32, 4), 2) }, // a short: 2·4+2+1 = 11
		func() { p.GemmSegs(2, make([]float32, 11), 2, 3, -1, make([]float32, 4), 2) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("GemmSegs: no panic")
				}
			}()
			f()
		}()
	}
	p.GemmSegs(2, make([]float32, 11), 2, 3, 4, make([]float32, 4), 2) // exactly enough
}

// BenchmarkGemmF32Acc measures the in-place float stem convolution (3
// channels to 16, 3x3, stride 2, 640 to 320) over all 320 output rows: as
// the interpreter runs an output row, one GemmSegs over the three filter rows
// read in place with lda = 6 ("segs"), and as it runs a row that touches
// the padding, three GemmAcc calls, one per filter row ("acc"). Compare
// with BenchmarkGemmF32's stem_3x3_3to16, the same MACs on an im2col matrix.
func BenchmarkGemmF32Acc(b *testing.B) {
	const iw, ic, oc, kw, kh, sw, ow, oh = 642, 3, 16, 3, 3, 2, 320, 320
	r := rand.New(rand.NewPCG(1, 1))
	img := make([]float32, iw*iw*ic)
	fillF32Edges(r, img)
	w := make([]float32, oc*kh*kw*ic)
	fillF32Edges(r, w)
	c := make([]float32, ow*oh*oc)
	for _, im := range f32Impls {
		full := packF32(im, oc, kh*kw*ic, w)
		rows := make([]*PackedF32, kh)
		for ky := range rows {
			wr := make([]float32, oc*kw*ic)
			for j := 0; j < oc; j++ {
				copy(wr[j*kw*ic:(j+1)*kw*ic], w[j*kh*kw*ic+ky*kw*ic:])
			}
			rows[ky] = packF32(im, oc, kw*ic, wr)
		}
		for _, mode := range []string{"segs", "acc"} {
			b.Run(fmt.Sprintf("%s/stem_3x3_3to16_%s", im, mode), func(b *testing.B) {
				loop := func() {
					for oy := 0; oy < oh; oy++ {
						row := c[oy*ow*oc : (oy+1)*ow*oc]
						if mode == "segs" {
							full.GemmSegs(ow, img[oy*2*iw*ic:], sw*ic, kh, iw*ic, row, oc)
							continue
						}
						clear(row)
						for ky, p := range rows {
							p.GemmAcc(ow, img[(oy*2+ky)*iw*ic:], sw*ic, row, oc)
						}
					}
				}
				loop()
				cpu := onThread(func() {
					for b.Loop() {
						loop()
					}
				})
				reportGMACs(b, ow*oh, oc, kh*kw*ic, cpu)
			})
		}
	}
}
