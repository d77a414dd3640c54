package kernel

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSaturatingRoundingDoublingHighMul(t *testing.T) {
	tests := []struct{ a, b, want int32 }{
		{1 << 30, 1 << 30, 1 << 29},
		{math.MinInt32, math.MinInt32, math.MaxInt32},
		{math.MaxInt32, math.MaxInt32, math.MaxInt32 - 1},
		{math.MinInt32, math.MaxInt32, -math.MaxInt32},
		{3, 1 << 30, 2},   // 1.5 rounds up
		{-3, 1 << 30, -1}, // -1.5: nudge 1-2^30 then truncation gives -1
		{-1, 1 << 30, 0},
		{0, math.MaxInt32, 0},
		{1000, 1518500250, 707},
	}
	for _, tt := range tests {
		if got := SaturatingRoundingDoublingHighMul(tt.a, tt.b); got != tt.want {
			t.Errorf("SaturatingRoundingDoublingHighMul(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestRoundingDivideByPOT(t *testing.T) {
	tests := []struct {
		x    int32
		e    int
		want int32
	}{
		{5, 1, 3}, {-5, 1, -3}, {4, 1, 2}, {-4, 1, -2},
		{7, 2, 2}, {6, 2, 2}, {-6, 2, -2}, {-7, 2, -2}, {5, 2, 1}, {-5, 2, -1},
		{12345, 0, 12345}, {-12345, 0, -12345},
		{math.MaxInt32, 31, 1}, {math.MinInt32, 31, -1}, {math.MaxInt32, 30, 2},
		{1 << 30, 31, 1}, {1<<30 - 1, 31, 0}, {-1 << 30, 31, -1}, {-1<<30 + 1, 31, 0},
	}
	for _, tt := range tests {
		if got := RoundingDivideByPOT(tt.x, tt.e); got != tt.want {
			t.Errorf("RoundingDivideByPOT(%d, %d) = %d, want %d", tt.x, tt.e, got, tt.want)
		}
	}
}

// TestMultiplyByQuantizedMultiplier checks the fixed-point helper against
// the same double rounding done in exact 128-bit-free arithmetic: first
// round(x·m/2³¹) half up, then round(·/2^rs) half away from zero.
func TestMultiplyByQuantizedMultiplier(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 200000 {
		x := int32(r.Uint32())
		if r.IntN(2) == 0 {
			x >>= r.IntN(31)
		}
		m := int32(1<<30 + r.IntN(1<<30))
		shift := -r.IntN(32)
		if r.IntN(8) == 0 {
			shift = r.IntN(4)
			x >>= 4
		}
		xs := int64(x) << max(shift, 0)
		h := floorDiv(xs*int64(m)+1<<30, 1<<31)
		rs := int64(1) << max(-shift, 0)
		var want int64
		if h >= 0 {
			want = (h + rs/2) / rs
		} else {
			want = -((-h + rs/2) / rs)
		}
		if rs == 1 {
			want = h
		}
		if got := MultiplyByQuantizedMultiplier(x, m, shift); int64(got) != want {
			t.Fatalf("MultiplyByQuantizedMultiplier(%d, %d, %d) = %d, want %d", x, m, shift, got, want)
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func TestNewRequantErrors(t *testing.T) {
	one := []int32{1 << 30}
	tests := []struct {
		name              string
		n                 int
		bias, mult, shift []int32
		min, max          int32
	}{
		{"negative n", -1, nil, nil, nil, -128, 127},
		{"bias length", 1, []int32{1, 2}, one, []int32{0}, -128, 127},
		{"mult length", 2, nil, one, []int32{0, 0}, -128, 127},
		{"negative mult", 1, nil, []int32{-5}, []int32{0}, -128, 127},
		{"shift too small", 1, nil, one, []int32{-32}, -128, 127},
		{"shift too big", 1, nil, one, []int32{31}, -128, 127},
		{"min > max", 1, nil, one, []int32{0}, 5, 4},
		{"range outside int8", 1, nil, one, []int32{0}, -129, 127},
	}
	for _, tt := range tests {
		if _, err := NewRequant(tt.n, tt.bias, tt.mult, tt.shift, 0, tt.min, tt.max); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
		if _, err := NewRequantRuy(tt.n, tt.bias, tt.mult, tt.shift, 0, tt.min, tt.max); err == nil {
			t.Errorf("%s: NewRequantRuy: no error", tt.name)
		}
	}
}

// TestGemmRequantSmall pins the whole epilogue on a hand-computed example.
func TestGemmRequantSmall(t *testing.T) {
	// a = [[1,2,3],[-4,5,-6]], B = [[1,1,1],[2,0,-1]]: acc = [[6,-1],[-5,-2]].
	a := []int8{1, 2, 3, -4, 5, -6}
	b := []int8{1, 1, 1, 2, 0, -1}
	// Channel 0: (acc+10)·0.5 + 3, clamp [-128,127]. Channel 1: (acc-0)·2·0.5·2^-1 + 3.
	q, err := NewRequant(2, []int32{10, 0}, []int32{1 << 30, 1 << 30}, []int32{0, 1}, 3, -128, 4)
	if err != nil {
		t.Fatal(err)
	}
	// Channel 1 has shift +1: x<<1 then ·0.5 → x. Clamped to max 4.
	want := []int8{4, 2, 4, 1} // ch0: (16·0.5=8)+3=11→4, (5·0.5=2.5→3)+3=6→4; ch1: -1+3=2, -2+3=1
	for _, im := range s8Impls {
		out := make([]int8, 4)
		packS8(im, 2, 3, b).GemmRequant(2, a, 3, q, out, 2)
		for i := range want {
			if out[i] != want[i] {
				t.Errorf("%v: out = %v, want %v", im, out, want)
				break
			}
		}
	}
}

func TestGemmRequant(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, im := range s8Impls {
		t.Run(im.String(), func(t *testing.T) {
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
				acc := make([]int32, tc.m*tc.n)
				refS8(tc.m, tc.n, tc.k, a, lda, b, acc, tc.n)
				bias := make([]int32, tc.n)
				mult := make([]int32, tc.n)
				shift := make([]int32, tc.n)
				// Scale so outputs straddle the int8 range: 1/(k·128) or so.
				base := -int32(math.Ceil(math.Log2(float64(tc.k*64 + 1))))
				for j := range bias {
					bias[j] = int32(r.IntN(4001) - 2000)
					mult[j] = int32(1<<30 + r.IntN(1<<30))
					shift[j] = max(-31, base+int32(r.IntN(5))-2)
					if r.IntN(10) == 0 {
						shift[j] = int32(r.IntN(3)) // left shifts too
					}
				}
				lo, hi := int32(-128+r.IntN(20)), int32(127-r.IntN(20))
				q, err := NewRequant(tc.n, bias, mult, shift, int32(r.IntN(21)-10), lo, hi)
				if err != nil {
					t.Fatal(err)
				}
				out := make([]int8, tc.m*ldo)
				for i := range out {
					out[i] = 0x5a
				}
				packS8(im, tc.n, tc.k, b).GemmRequant(tc.m, a, lda, q, out, ldo)
				for i := 0; i < tc.m; i++ {
					for j := 0; j < ldo; j++ {
						want := int8(0x5a)
						if j < tc.n {
							v := MultiplyByQuantizedMultiplier(acc[i*tc.n+j]+bias[j], mult[j], int(shift[j]))
							want = int8(max(lo, min(hi, v+q.outZero)))
						}
						if got := out[i*ldo+j]; got != want {
							t.Fatalf("%v: out[%d][%d] = %d, want %d (acc %d)", tc, i, j, got, want, acc[i*tc.n+j])
						}
					}
				}
			}
		})
	}
}

// TestGemmRequantExtremes drives the epilogue to the int32 edges: biases
// near ±2³¹ (so acc+bias wraps), multipliers 0, 1 and 2³¹-1, shifts -31, 0
// and left shifts that wrap, all against the scalar reference.
func TestGemmRequantExtremes(t *testing.T) {
	mults := []int32{0, 1, 1 << 30, math.MaxInt32, 1518500250}
	shifts := []int32{-31, -30, -1, 0, 1, 30}
	biases := []int32{0, math.MaxInt32, math.MinInt32, math.MaxInt32 - 16000, math.MinInt32 + 16000, -1, 1 << 30}
	var bias, mult, shift []int32
	for _, b := range biases {
		for _, m := range mults {
			for _, s := range shifts {
				bias, mult, shift = append(bias, b), append(mult, m), append(shift, s)
			}
		}
	}
	n, k, m := len(bias), 2, 5
	a := []int8{-128, -128, 127, 127, -128, 127, 0, 0, 1, -1}
	b := make([]int8, n*k)
	for j := range b {
		b[j] = []int8{-128, 127, -1, 0, 1}[j%5]
	}
	q, err := NewRequant(n, bias, mult, shift, 5, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	acc := make([]int32, m*n)
	refS8(m, n, k, a, k, b, acc, n)
	for _, im := range s8Impls {
		out := make([]int8, m*n)
		packS8(im, n, k, b).GemmRequant(m, a, k, q, out, n)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				if want := q.apply(acc[i*n+j], j); out[i*n+j] != want {
					t.Fatalf("%v: out[%d][%d] = %d, want %d (acc %d bias %d mult %d shift %d)",
						im, i, j, out[i*n+j], want, acc[i*n+j], bias[j], mult[j], shift[j])
				}
			}
		}
	}
}
