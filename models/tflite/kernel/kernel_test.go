package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// refS8 is the naive reference: c = a·bᵀ, b n×k row-major.
func refS8(m, n, k int, a []int8, lda int, b []int8, c []int32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s int32
			for x := 0; x < k; x++ {
				s += int32(a[i*lda+x]) * int32(b[j*k+x])
			}
			c[i*ldc+j] = s
		}
	}
}

func refF32(m, n, k int, a []float32, lda int, b []float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for x := 0; x < k; x++ {
				s += float64(a[i*lda+x]) * float64(b[j*k+x])
			}
			c[i*ldc+j] = float32(s)
		}
	}
}

type fill int

const (
	fillRandom fill = iota
	fillMin         // every value -128
	fillMax         // every value 127
	fillMixed       // a = -128, b = 127 alternating with -128
)

func fillS8(r *rand.Rand, v []int8, f fill, isB bool) {
	for i := range v {
		switch f {
		case fillRandom:
			v[i] = int8(r.IntN(256) - 128)
		case fillMin:
			v[i] = -128
		case fillMax:
			v[i] = 127
		case fillMixed:
			switch {
			case !isB:
				v[i] = -128
			case i%3 == 0:
				v[i] = -128
			default:
				v[i] = 127
			}
		}
	}
}

type gemmCase struct {
	m, n, k   int
	padA      int // lda = k + padA
	padC      int // ldc = n + padC
	fill      fill
	exactTail bool // a ends exactly at its last element (no slack to read past)
}

func gemmCases() []gemmCase {
	var cs []gemmCase
	dims := []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 24, 31, 33}
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range dims {
		for _, n := range dims {
			k := dims[r.IntN(len(dims))]
			cs = append(cs, gemmCase{m: m, n: n, k: k, padA: r.IntN(3), padC: r.IntN(3), exactTail: r.IntN(2) == 0})
		}
	}
	for _, k := range []int{1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 27, 32, 63, 64, 65, 144, 288, 577} {
		cs = append(cs, gemmCase{m: 29, n: 37, k: k, exactTail: true}, gemmCase{m: 13, n: 80, k: k, padA: 1, padC: 3})
	}
	// Realistic conv shapes, cut down in m.
	for _, s := range [][3]int{{200, 16, 27}, {64, 32, 144}, {50, 64, 576}, {31, 256, 1152}, {40, 80, 64}, {7, 255, 128}} {
		cs = append(cs, gemmCase{m: s[0], n: s[1], k: s[2], exactTail: true})
	}
	for _, f := range []fill{fillMin, fillMax, fillMixed} {
		for _, s := range [][3]int{{1, 1, 1}, {3, 17, 3}, {25, 33, 4099}, {13, 48, 255}, {6, 16, 27}} {
			cs = append(cs, gemmCase{m: s[0], n: s[1], k: s[2], fill: f, exactTail: true})
		}
	}
	return cs
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("m%d_n%d_k%d_pa%d_pc%d_f%d", tc.m, tc.n, tc.k, tc.padA, tc.padC, tc.fill)
}

const sentinel = -0x5a5a5a5a

func TestGemmS8(t *testing.T) {
	for _, im := range s8Impls {
		t.Run(im.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			for _, tc := range gemmCases() {
				lda, ldc := tc.k+tc.padA, tc.n+tc.padC
				la := (tc.m-1)*lda + tc.k
				if !tc.exactTail {
					la = tc.m * lda
				}
				a := make([]int8, la)
				b := make([]int8, tc.n*tc.k)
				fillS8(r, a, tc.fill, false)
				fillS8(r, b, tc.fill, true)
				want := make([]int32, tc.m*ldc)
				got := make([]int32, tc.m*ldc)
				for i := range got {
					got[i], want[i] = sentinel, sentinel
				}
				refS8(tc.m, tc.n, tc.k, a, lda, b, want, ldc)
				p := packS8(im, tc.n, tc.k, b)
				p.Gemm(tc.m, a, lda, got, ldc)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%v: c[%d][%d] = %d, want %d", tc, i/ldc, i%ldc, got[i], want[i])
					}
				}
				for j, s := range p.RowSums() {
					var w int32
					for _, v := range b[j*tc.k : j*tc.k+tc.k] {
						w += int32(v)
					}
					if s != w {
						t.Fatalf("%v: RowSums()[%d] = %d, want %d", tc, j, s, w)
					}
				}
			}
		})
	}
}

func TestGemmF32(t *testing.T) {
	for _, im := range f32Impls {
		t.Run(im.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			for _, tc := range gemmCases() {
				lda, ldc := tc.k+tc.padA, tc.n+tc.padC
				la := (tc.m-1)*lda + tc.k
				if !tc.exactTail {
					la = tc.m * lda
				}
				a := make([]float32, la)
				b := make([]float32, tc.n*tc.k)
				for i := range a {
					a[i] = r.Float32()*2 - 1
				}
				for i := range b {
					b[i] = r.Float32()*2 - 1
				}
				want := make([]float32, tc.m*ldc)
				got := make([]float32, tc.m*ldc)
				for i := range got {
					got[i], want[i] = sentinel, sentinel
				}
				refF32(tc.m, tc.n, tc.k, a, lda, b, want, ldc)
				packF32(im, tc.n, tc.k, b).Gemm(tc.m, a, lda, got, ldc)
				tol := 1e-5 * float64(tc.k)
				for i := range got {
					if d := math.Abs(float64(got[i] - want[i])); d > tol || math.IsNaN(float64(got[i])) {
						t.Fatalf("%v: c[%d][%d] = %g, want %g", tc, i/ldc, i%ldc, got[i], want[i])
					}
				}
			}
		})
	}
}

// TestGemmS8Concurrent splits m across goroutines the way the interpreter
// does; -race checks that the kernel writes nothing shared.
func TestGemmS8Concurrent(t *testing.T) {
	const m, n, k, parts = 203, 48, 75, 4
	r := rand.New(rand.NewPCG(7, 8))
	a := make([]int8, m*k)
	b := make([]int8, n*k)
	fillS8(r, a, fillRandom, false)
	fillS8(r, b, fillRandom, true)
	want := make([]int32, m*n)
	refS8(m, n, k, a, k, b, want, n)
	for _, im := range s8Impls {
		p := packS8(im, n, k, b)
		got := make([]int32, m*n)
		var wg sync.WaitGroup
		for w := 0; w < parts; w++ {
			lo, hi := w*m/parts, (w+1)*m/parts
			wg.Go(func() { p.Gemm(hi-lo, a[lo*k:], k, got[lo*n:], n) })
		}
		wg.Wait()
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%v: c[%d] = %d, want %d", im, i, got[i], want[i])
			}
		}
	}
}

func TestZeroSizes(t *testing.T) {
	for _, im := range s8Impls {
		p := packS8(im, 3, 0, nil)
		c := []int32{1, 2, 3, 4, 5, 6}
		p.Gemm(2, nil, 0, c, 3)
		for i, v := range c {
			if v != 0 {
				t.Errorf("%v: k=0: c[%d] = %d, want 0", im, i, v)
			}
		}
		packS8(im, 0, 5, nil).Gemm(4, make([]int8, 20), 5, nil, 0)
		packS8(im, 3, 5, make([]int8, 15)).Gemm(0, nil, 5, nil, 3)
	}
	for _, im := range f32Impls {
		c := []float32{1, 2, 3}
		packF32(im, 3, 0, nil).Gemm(1, nil, 0, c, 3)
		if c[0] != 0 || c[2] != 0 {
			t.Errorf("%v: k=0: c = %v, want zeros", im, c)
		}
	}
}

func TestBadSizesPanic(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"pack short b", func() { PackS8(2, 3, make([]int8, 5)) }},
		{"pack negative", func() { PackS8(-1, 3, nil) }},
		{"short a", func() { PackS8(2, 3, make([]int8, 6)).Gemm(2, make([]int8, 5), 3, make([]int32, 4), 2) }},
		{"short c", func() { PackS8(2, 3, make([]int8, 6)).Gemm(2, make([]int8, 6), 3, make([]int32, 3), 2) }},
		{"lda < k", func() { PackS8(2, 3, make([]int8, 6)).Gemm(1, make([]int8, 6), 2, make([]int32, 4), 2) }},
		{"f32 short a", func() { PackF32(2, 3, make([]float32, 6)).Gemm(2, make([]float32, 5), 3, make([]float32, 4), 2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.f()
		})
	}
}

func FuzzGemmS8(f *testing.F) {
	f.Add(uint8(3), uint8(5), uint8(7), []byte{1, 2, 3, 255, 128})
	f.Add(uint8(1), uint8(16), uint8(27), []byte{128, 127})
	f.Fuzz(func(t *testing.T, m, n, k uint8, data []byte) {
		mm, nn, kk := int(m%40)+1, int(n%70)+1, int(k%90)+1
		next := func(i int) int8 {
			if len(data) == 0 {
				return int8(i*37 + 11)
			}
			return int8(data[i%len(data)] ^ byte(i>>3))
		}
		a := make([]int8, mm*kk)
		b := make([]int8, nn*kk)
		for i := range a {
			a[i] = next(i)
		}
		for i := range b {
			b[i] = next(i + 7919)
		}
		want := make([]int32, mm*nn)
		refS8(mm, nn, kk, a, kk, b, want, nn)
		for _, im := range s8Impls {
			got := make([]int32, mm*nn)
			packS8(im, nn, kk, b).Gemm(mm, a, kk, got, nn)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%v m=%d n=%d k=%d: c[%d] = %d, want %d", im, mm, nn, kk, i, got[i], want[i])
				}
			}
		}
	})
}

// TestNoAllocs: the interpreter calls the kernels per tile of a few dozen
// rows, so a call must not allocate, including the ragged last row that
// goes through a padded copy (a ends exactly at its last element here).
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	const m, n, k = 64, 40, 27
	a := make([]int8, m*k)
	c := make([]int32, m*n)
	o := make([]int8, m*n)
	q, err := NewRequant(n, nil, make([]int32, n), make([]int32, n), 0, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	qr, err := NewRequantRuy(n, nil, make([]int32, n), make([]int32, n), 0, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range s8Impls {
		p := packS8(im, n, k, make([]int8, n*k))
		if got := testing.AllocsPerRun(10, func() { p.Gemm(m, a, k, c, n) }); got != 0 {
			t.Errorf("%v: Gemm: %v allocations per call", im, got)
		}
		if got := testing.AllocsPerRun(10, func() { p.GemmRequant(m, a, k, q, o, n) }); got != 0 {
			t.Errorf("%v: GemmRequant: %v allocations per call", im, got)
		}
		if got := testing.AllocsPerRun(10, func() { p.GemmRequant(m, a, k, qr, o, n) }); got != 0 {
			t.Errorf("%v: GemmRequant (ruy): %v allocations per call", im, got)
		}
	}
	af := make([]float32, m*k)
	cf := make([]float32, m*n)
	for _, im := range f32Impls {
		p := packF32(im, n, k, make([]float32, n*k))
		if got := testing.AllocsPerRun(10, func() { p.Gemm(m, af, k, cf, n) }); got != 0 {
			t.Errorf("%v: float32 Gemm: %v allocations per call", im, got)
		}
	}
}

// TestRepackS8: packing new values into a PackedS8 gives the products and
// row sums of a fresh pack of them, on every implementation and on shapes
// with panel and depth tails, and allocates nothing.
func TestRepackS8(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	rnd := func(n int) []int8 {
		s := make([]int8, n)
		for i := range s {
			s[i] = int8(r.IntN(256) - 128)
		}
		return s
	}
	for _, im := range s8Impls {
		for _, sh := range [][3]int{{5, 17, 3}, {64, 400, 400}, {7, 33, 32}} {
			m, n, k := sh[0], sh[1], sh[2]
			p := packS8(im, n, k, rnd(n*k))
			b := rnd(n * k)
			if allocs := testing.AllocsPerRun(1, func() { p.Repack(b) }); allocs != 0 {
				t.Errorf("%s %v: Repack allocates %v times", im, sh, allocs)
			}
			fresh := packS8(im, n, k, b)
			a := rnd(m * k)
			got, want := make([]int32, m*n), make([]int32, m*n)
			p.Gemm(m, a, k, got, n)
			fresh.Gemm(m, a, k, want, n)
			if !slices.Equal(got, want) || !slices.Equal(p.RowSums(), fresh.RowSums()) {
				t.Errorf("%s %v: repacked B multiplies differently from a fresh pack", im, sh)
			}
		}
	}
}
