package kernel

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"sync"
	"testing"
)

// refRuy is the single-rounding requantization written out as ruy states
// it, independent of the package's code: acc + bias and + zp wrap like
// int32, the product, rounding and arithmetic shift are exact in int64.
func refRuy(acc, bias, mult, shift, zp, lo, hi int32) int8 {
	x := acc + bias
	total := 31 - shift
	r := (int64(x)*int64(mult) + int64(1)<<(total-1)) >> total
	if r > math.MaxInt32 {
		r = math.MaxInt32
	}
	if r < math.MinInt32 {
		r = math.MinInt32
	}
	v := int32(r) + zp
	return int8(max(lo, min(hi, v)))
}

// TestMultiplyByQuantizedMultiplierRuy checks the scalar function against
// the formula in unbounded integers: floor((x·m + 2^(t-1)) / 2^t),
// saturated, over random and extreme arguments and every shift.
func TestMultiplyByQuantizedMultiplierRuy(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	xs := []int32{0, 1, -1, 2, -2, 3, -3, math.MaxInt32, math.MinInt32, math.MaxInt32 - 1, math.MinInt32 + 1, 1 << 30, -1 << 30}
	ms := []int32{0, 1, 2, 1 << 30, 1<<30 + 1, math.MaxInt32, math.MaxInt32 - 1, 1518500250}
	for range 60 {
		xs = append(xs, int32(r.Uint32()), int32(r.Uint32())>>r.IntN(31))
		ms = append(ms, int32(r.Uint32()>>1))
	}
	want := func(x, m int32, shift int) int32 {
		total := uint(31 - shift)
		v := new(big.Int).Mul(big.NewInt(int64(x)), big.NewInt(int64(m)))
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), total-1))
		v.Rsh(v, total) // floor for negatives too
		switch {
		case v.Cmp(big.NewInt(math.MaxInt32)) > 0:
			return math.MaxInt32
		case v.Cmp(big.NewInt(math.MinInt32)) < 0:
			return math.MinInt32
		}
		return int32(v.Int64())
	}
	for shift := -31; shift <= 30; shift++ {
		for _, x := range xs {
			for _, m := range ms {
				if got, w := MultiplyByQuantizedMultiplierRuy(x, m, shift), want(x, m, shift); got != w {
					t.Fatalf("MultiplyByQuantizedMultiplierRuy(%d, %d, %d) = %d, want %d", x, m, shift, got, w)
				}
			}
		}
	}
}

// TestGemmRequantRuySmall pins the single rounding on values where it and
// the double rounding differ: x·2^-2 for x = 1, -2, -6, 3.
func TestGemmRequantRuySmall(t *testing.T) {
	a := []int8{1}
	b := []int8{1, -2, -6, 3}
	mult := []int32{1 << 30, 1 << 30, 1 << 30, 1 << 30}
	shift := []int32{-1, -1, -1, -1}
	tests := []struct {
		name string
		new  func(n int, bias, mult, shift []int32, outZero, min, max int32) (*Requant, error)
		want []int8
	}{
		// floor(x/4 + 1/2)
		{"ruy", NewRequantRuy, []int8{0, 0, -1, 1}},
		// round(round(x/2)/2), ties away from zero both times
		{"gemmlowp", NewRequant, []int8{1, -1, -2, 1}},
	}
	for _, tt := range tests {
		q, err := tt.new(4, nil, mult, shift, 0, -128, 127)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range s8Impls {
			out := make([]int8, 4)
			packS8(im, 4, 1, b).GemmRequant(1, a, 1, q, out, 4)
			if fmt.Sprint(out) != fmt.Sprint(tt.want) {
				t.Errorf("%s %v: out = %v, want %v", tt.name, im, out, tt.want)
			}
		}
	}
}

// ruyParams are per-channel parameters of a requantization test.
type ruyParams struct {
	bias, mult, shift []int32
	zp, lo, hi        int32
}

// checkRuy runs GemmRequant with NewRequantRuy(p) on every implementation
// and compares every output, and the padding of out, with refRuy.
func checkRuy(t *testing.T, name string, m, n, k int, a []int8, lda int, b []int8, ldo int, p ruyParams) {
	t.Helper()
	q, err := NewRequantRuy(n, p.bias, p.mult, p.shift, p.zp, p.lo, p.hi)
	if err != nil {
		t.Fatal(err)
	}
	acc := make([]int32, m*n)
	refS8(m, n, k, a, lda, b, acc, n)
	for _, im := range s8Impls {
		out := make([]int8, m*ldo)
		for i := range out {
			out[i] = 0x5a
		}
		packS8(im, n, k, b).GemmRequant(m, a, lda, q, out, ldo)
		for i := 0; i < m; i++ {
			for j := 0; j < ldo; j++ {
				want := int8(0x5a)
				var bias int32
				if j < n {
					if p.bias != nil {
						bias = p.bias[j]
					}
					want = refRuy(acc[i*n+j], bias, p.mult[j], p.shift[j], p.zp, p.lo, p.hi)
				}
				if got := out[i*ldo+j]; got != want {
					t.Fatalf("%s %v: out[%d][%d] = %d, want %d (acc %d bias %d mult %d shift %d zp %d range [%d, %d])",
						name, im, i, j, got, want, acc[i*n+j], bias, p.mult[min(j, n-1)], p.shift[min(j, n-1)], p.zp, p.lo, p.hi)
				}
			}
		}
	}
}

// TestGemmRequantRuy runs every GEMM shape of TestGemmS8 with realistic
// scales (outputs straddling the int8 range, the odd left shift) through
// every implementation.
func TestGemmRequantRuy(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, tc := range gemmCases() {
		lda, ldo := tc.k+tc.padA, tc.n+tc.padC
		la := (tc.m-1)*lda + tc.k
		if !tc.exactTail {
			la = tc.m * lda
		}
		a := make([]int8, la)
		b := make([]int8, tc.n*tc.k)
		fillS8(r, a, tc.fill, false)
		fillS8(r, b, tc.fill, true)
		p := ruyParams{
			bias: make([]int32, tc.n), mult: make([]int32, tc.n), shift: make([]int32, tc.n),
			zp: int32(r.IntN(21) - 10), lo: int32(-128 + r.IntN(20)), hi: int32(127 - r.IntN(20)),
		}
		base := -int32(math.Ceil(math.Log2(float64(tc.k*64 + 1))))
		for j := range p.bias {
			p.bias[j] = int32(r.IntN(4001) - 2000)
			p.mult[j] = int32(1<<30 + r.IntN(1<<30))
			p.shift[j] = max(-31, base+int32(r.IntN(5))-2)
			if r.IntN(10) == 0 {
				p.shift[j] = int32(r.IntN(3))
			}
		}
		checkRuy(t, tc.String(), tc.m, tc.n, tc.k, a, lda, b, ldo, p)
	}
}

// TestGemmRequantRuyRandomParams draws every parameter from its whole
// range: biases over all of int32 (so acc + bias wraps), multipliers over
// [0, 2³¹), shifts over [-31, 30], zero points over all of int32 (so the
// addition after saturation wraps too), any activation range.
func TestGemmRequantRuyRandomParams(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	for it := range 60 {
		m, n, k := 1+r.IntN(20), 1+r.IntN(70), 1+r.IntN(300)
		a := make([]int8, m*k)
		b := make([]int8, n*k)
		fillS8(r, a, fill(r.IntN(4)), false)
		fillS8(r, b, fill(r.IntN(4)), true)
		lo := int32(r.IntN(256) - 128)
		p := ruyParams{
			bias: make([]int32, n), mult: make([]int32, n), shift: make([]int32, n),
			zp: int32(r.Uint32()), lo: lo, hi: lo + int32(r.IntN(int(128-lo))),
		}
		if it%2 == 0 {
			p.zp = int32(r.IntN(256) - 128)
		}
		for j := 0; j < n; j++ {
			p.bias[j] = int32(r.Uint32())
			p.mult[j] = int32(r.Uint32() >> 1)
			p.shift[j] = int32(r.IntN(62) - 31)
		}
		checkRuy(t, fmt.Sprintf("random%d_m%d_n%d_k%d", it, m, n, k), m, n, k, a, k, b, n, p)
	}
}

// TestGemmRequantRuyExtremes drives the single rounding to its edges: every
// shift from -31 to 30 (total shifts 1 to 62), multipliers 0, 1 and
// 2³¹-1, biases near ±2³¹ so acc + bias wraps or lands on the int32
// limits, accumulators at their most negative and positive, and zero
// points that make the addition after saturation wrap. The shapes run
// every register block of every kernel: m from 1 to 16 rows, and numbers
// of channels that leave each possible last chunk.
func TestGemmRequantRuyExtremes(t *testing.T) {
	mults := []int32{0, 1, 2, 1 << 30, math.MaxInt32, math.MaxInt32 - 1, 1518500250}
	biases := []int32{0, math.MaxInt32, math.MinInt32, math.MaxInt32 - 32512, math.MinInt32 + 32768, -1, 1, 1 << 30, -1 << 30}
	var bias, mult, shift []int32
	for _, bv := range biases {
		for _, mv := range mults {
			for s := int32(-31); s <= 30; s++ {
				bias, mult, shift = append(bias, bv), append(mult, mv), append(shift, s)
			}
		}
	}
	// Rows of A: with the B rows below, acc = Σ a·b runs from -2·128·127
	// to 2·128·128.
	rowsA := [][2]int8{{-128, -128}, {127, 127}, {-128, 127}, {0, 0}, {1, -1}, {127, -128}, {-128, 0}, {5, 3}}
	const k = 2
	rowsB := [][2]int8{{-128, -128}, {127, 127}, {-1, 0}, {1, 1}, {-128, 127}, {127, -128}, {0, 0}, {3, -2}, {-128, 0}}
	zps := []int32{0, 5, -7, 127, -128, math.MaxInt32, math.MinInt32}
	ranges := [][2]int32{{-128, 127}, {0, 6}, {-128, -128}, {127, 127}, {-100, 50}}
	extra := []int{0, 16, 32, 48, 8} // leave last chunks of 1..4 VNNI and 1..2 AVX2 panels
	for _, e := range extra {
		n := len(bias) + e
		b := make([]int8, n*k)
		p := ruyParams{bias: make([]int32, n), mult: make([]int32, n), shift: make([]int32, n)}
		for j := 0; j < n; j++ {
			c := j % len(bias)
			p.bias[j], p.mult[j], p.shift[j] = bias[c], mult[c], shift[c]
			copy(b[j*k:], rowsB[j%len(rowsB)][:])
		}
		for m := 1; m <= 16; m++ {
			a := make([]int8, m*k)
			for i := 0; i < m; i++ {
				copy(a[i*k:], rowsA[(i+m)%len(rowsA)][:])
			}
			p.zp = zps[(m+e)%len(zps)]
			p.lo, p.hi = ranges[m%len(ranges)][0], ranges[m%len(ranges)][1]
			checkRuy(t, fmt.Sprintf("m%d_n%d", m, n), m, n, k, a, k, b, n, p)
		}
	}
	// Every zero point and range on one shape, and no bias at all.
	n, m := len(bias), 6
	b := make([]int8, n*k)
	for j := 0; j < n; j++ {
		copy(b[j*k:], rowsB[j%len(rowsB)][:])
	}
	a := make([]int8, m*k)
	for i := 0; i < m; i++ {
		copy(a[i*k:], rowsA[i][:])
	}
	for _, zp := range zps {
		for _, rg := range ranges {
			p := ruyParams{bias: bias, mult: mult, shift: shift, zp: zp, lo: rg[0], hi: rg[1]}
			checkRuy(t, fmt.Sprintf("zp%d_range%v", zp, rg), m, n, k, a, k, b, n, p)
		}
	}
	checkRuy(t, "nobias", m, n, k, a, k, b, n, ruyParams{mult: mult, shift: shift, zp: 3, lo: -128, hi: 127})
}

// TestGemmRequantRuyConcurrent splits rows across goroutines like the
// interpreter; -race checks that nothing shared is written.
func TestGemmRequantRuyConcurrent(t *testing.T) {
	const m, n, k, parts = 203, 48, 75, 4
	r := rand.New(rand.NewPCG(27, 28))
	a := make([]int8, m*k)
	b := make([]int8, n*k)
	fillS8(r, a, fillRandom, false)
	fillS8(r, b, fillRandom, true)
	mult, shift := make([]int32, n), make([]int32, n)
	for j := range mult {
		mult[j], shift[j] = int32(1<<30+r.IntN(1<<30)), -int32(8+r.IntN(4))
	}
	q, err := NewRequantRuy(n, nil, mult, shift, -5, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	acc := make([]int32, m*n)
	refS8(m, n, k, a, k, b, acc, n)
	for _, im := range s8Impls {
		p := packS8(im, n, k, b)
		out := make([]int8, m*n)
		var wg sync.WaitGroup
		for w := 0; w < parts; w++ {
			lo, hi := w*m/parts, (w+1)*m/parts
			wg.Go(func() { p.GemmRequant(hi-lo, a[lo*k:], k, q, out[lo*n:], n) })
		}
		wg.Wait()
		for i, v := range out {
			if want := refRuy(acc[i], 0, mult[i%n], shift[i%n], -5, -128, 127); v != want {
				t.Fatalf("%v: out[%d] = %d, want %d", im, i, v, want)
			}
		}
	}
}

// FuzzGemmRequantRuy compares every implementation with refRuy on fuzzed
// matrices and parameters.
func FuzzGemmRequantRuy(f *testing.F) {
	f.Add(uint8(3), uint8(17), uint8(5), int32(1000), int32(1<<30), int8(-9), int32(3), []byte{1, 2, 3, 255, 128})
	f.Add(uint8(1), uint8(16), uint8(27), int32(math.MinInt32), int32(math.MaxInt32), int8(30), int32(math.MaxInt32), []byte{128, 127})
	f.Add(uint8(7), uint8(40), uint8(1), int32(-1), int32(0), int8(-31), int32(-128), []byte{})
	f.Fuzz(func(t *testing.T, m, n, k uint8, bias, mult int32, shift int8, zp int32, data []byte) {
		mm, nn, kk := int(m%24)+1, int(n%70)+1, int(k%90)+1
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
		p := ruyParams{
			bias: make([]int32, nn), mult: make([]int32, nn), shift: make([]int32, nn),
			zp: zp, lo: -128, hi: 127,
		}
		for j := 0; j < nn; j++ {
			// Vary the fuzzed values across channels so lanes differ.
			p.bias[j] = bias + int32(j)*0x01010101
			p.mult[j] = int32(uint32(mult)+uint32(j)*0x9e3779b9) & math.MaxInt32
			s := (int(shift) + j) % 62
			if s < 0 {
				s += 62
			}
			p.shift[j] = int32(s - 31)
		}
		checkRuy(t, fmt.Sprintf("m%d_n%d_k%d", mm, nn, kk), mm, nn, kk, a, kk, b, nn, p)
	})
}
