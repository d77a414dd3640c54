package kernel

import "math"

// PairTableLen is the length of a table for LUT8x2: one byte for each pair
// of input bytes (a<<8 | b) and three bytes of padding, since the assembly
// reads four bytes at each index.
const PairTableLen = 1<<16 + 3

// LUT8x2 sets dst[i] = table[a[i]<<8 | b[i]]: a quantized ADD, SUB or MUL
// whose exact result for every pair of input bytes was worked out at load.
// With AVX-512 it gathers 16 results at a time (VPGATHERDD); elsewhere it is
// the plain loop. a, b and dst must have the same length.
func LUT8x2(dst, a, b []byte, table *[PairTableLen]byte) {
	b, dst = b[:len(a)], dst[:len(a)]
	n := 0
	if hasPairArch && len(a) >= 16 {
		n = len(a) &^ 15
		lut8x2Arch(&dst[0], &a[0], &b[0], n, table)
	}
	lut8x2Go(dst[n:], a[n:], b[n:], table)
}

// lut8x2Go is LUT8x2's plain loop.
func lut8x2Go(dst, a, b []byte, t *[PairTableLen]byte) {
	b, dst = b[:len(a)], dst[:len(a)]
	for i, x := range a {
		dst[i] = t[int(x)<<8|int(b[i])]
	}
}

// Arith is the operation of ArithF32.
type Arith int

// The operations ArithF32 runs: a+b, a-b, a·b, and b-a (for a single b: a
// value minus a tensor).
const (
	ArithAdd Arith = iota
	ArithSub
	ArithMul
	ArithSubFrom
)

// ArithF32 sets dst[i] = min(max(a[i] op b[i], lo), hi), Go's min and max
// (NaN in, NaN out; +0 above -0): a float ADD, SUB or MUL with its fused
// activation. A b of one element is that value for every i; otherwise b and
// dst are as long as a. With AVX-512 it does 16 floats per step (VRANGEPS
// for the clamp, which orders zeros and passes NaNs as min and max do).
func ArithF32(op Arith, dst, a, b []float32, lo, hi float32) {
	dst = dst[:len(a)]
	scalar := len(b) == 1 && len(a) != 1
	if !scalar {
		b = b[:len(a)]
	}
	n := 0
	if hasArithArch && len(a) >= 16 {
		n = len(a) &^ 15
		mode := int(op)
		if scalar {
			mode |= 4
		}
		arithF32Arch(&dst[0], &a[0], &b[0], n, mode, lo, hi)
	}
	if scalar {
		arithF32Go(op, dst[n:], a[n:], b, lo, hi)
	} else {
		arithF32Go(op, dst[n:], a[n:], b[n:], lo, hi)
	}
}

// arithF32Go is ArithF32's plain loops, one per operation.
func arithF32Go(op Arith, o, x, y []float32, lo, hi float32) {
	o = o[:len(x)]
	if len(y) == 1 && len(x) != 1 {
		v := y[0]
		switch op {
		case ArithAdd:
			for i, u := range x {
				o[i] = min(max(u+v, lo), hi)
			}
		case ArithSub:
			for i, u := range x {
				o[i] = min(max(u-v, lo), hi)
			}
		case ArithMul:
			for i, u := range x {
				o[i] = min(max(u*v, lo), hi)
			}
		case ArithSubFrom:
			for i, u := range x {
				o[i] = min(max(v-u, lo), hi)
			}
		}
		return
	}
	y = y[:len(x)]
	switch op {
	case ArithAdd:
		for i, u := range x {
			o[i] = min(max(u+y[i], lo), hi)
		}
	case ArithSub:
		for i, u := range x {
			o[i] = min(max(u-y[i], lo), hi)
		}
	case ArithMul:
		for i, u := range x {
			o[i] = min(max(u*y[i], lo), hi)
		}
	case ArithSubFrom:
		for i, u := range x {
			o[i] = min(max(y[i]-u, lo), hi)
		}
	}
}

// AddQ8 is an int8 ADD or SUB in TFLite's integer arithmetic (the reference
// kernel's): each input less its zero point, shifted left and scaled by its
// own multiplier, the two summed, scaled by the output multiplier, plus the
// output zero point, clamped. NewAddQ8 makes one.
type AddQ8 struct {
	p        addQ8Params
	sub      bool
	left     int32
	s1, s2   int
	shiftOut int
}

// addQ8Params is what addQ8Arch reads, at these offsets (elementwise_amd64.s).
type addQ8Params struct {
	z1, z2       int32 // 0, 4: input zero points
	l1, l2       int32 // 8, 12: left shifts, the common one and each multiplier's
	m1, m2       int32 // 16, 20: input multipliers
	r1, r2       int32 // 24, 28: right shifts
	mask1, mask2 int32 // 32, 36: 1<<r - 1
	half1, half2 int32 // 40, 44: mask>>1
	lo_, mo      int32 // 48, 52: the output's left shift and multiplier
	ro, masko    int32 // 56, 60
	halfo, zo    int32 // 64, 68
	min, max     int32 // 72, 76
	neg          int32 // 80: -1 for SUB, 0 for ADD
}

// NewAddQ8 returns the ADD (SUB when sub) of inputs with zero points z1, z2
// and multipliers (m1, s1), (m2, s2) after a common left shift, and output
// multiplier (mo, so), zero point zo and range [min, max] — the arguments of
// TFLite's MultiplyByQuantizedMultiplier. It returns false for parameters
// the vector path does not take (shifts past 31, a multiplier of MinInt32);
// the caller keeps its own loop for those.
func NewAddQ8(sub bool, z1, z2 int32, left int, m1 int32, s1 int, m2 int32, s2 int, mo int32, so int, zo, min, max int32) (*AddQ8, bool) {
	split := func(s int) (l, r int32) {
		if s > 0 {
			return int32(s), 0
		}
		return 0, int32(-s)
	}
	l1, r1 := split(s1)
	l2, r2 := split(s2)
	lo, ro := split(so)
	k := &AddQ8{sub: sub, left: int32(left), s1: s1, s2: s2, shiftOut: so}
	k.p = addQ8Params{z1: z1, z2: z2, l1: int32(left) + l1, l2: int32(left) + l2, m1: m1, m2: m2,
		r1: r1, r2: r2, lo_: lo, mo: mo, ro: ro, zo: zo, min: min, max: max}
	k.p.mask1, k.p.half1 = int32(1)<<r1-1, (int32(1)<<r1-1)>>1
	k.p.mask2, k.p.half2 = int32(1)<<r2-1, (int32(1)<<r2-1)>>1
	k.p.masko, k.p.halfo = int32(1)<<ro-1, (int32(1)<<ro-1)>>1
	if sub {
		k.p.neg = -1
	}
	ok := left >= 0 && k.p.l1 <= 31 && k.p.l2 <= 31 && lo <= 31 && r1 <= 31 && r2 <= 31 && ro <= 31 &&
		m1 != math.MinInt32 && m2 != math.MinInt32 && mo != math.MinInt32
	return k, ok
}

// Run sets dst[i] to the sum (difference) of a[i] and b[i], all int8 as
// bytes; a, b and dst have the same length. With AVX-512 it does 16 per
// step; elsewhere it is addQ8Go.
func (k *AddQ8) Run(dst, a, b []byte) {
	b, dst = b[:len(a)], dst[:len(a)]
	n := 0
	if hasAddQ8Arch && len(a) >= 16 {
		n = len(a) &^ 15
		addQ8Arch(&dst[0], &a[0], &b[0], n, &k.p)
	}
	k.addQ8Go(dst[n:], a[n:], b[n:])
}

// One is the result for one pair of int8 inputs: the reference formula.
func (k *AddQ8) One(x, y int32) int32 {
	s1 := MultiplyByQuantizedMultiplier((x-k.p.z1)<<k.left, k.p.m1, k.s1)
	s2 := MultiplyByQuantizedMultiplier((y-k.p.z2)<<k.left, k.p.m2, k.s2)
	raw := s1 + s2
	if k.sub {
		raw = s1 - s2
	}
	r := MultiplyByQuantizedMultiplier(raw, k.p.mo, k.shiftOut) + k.p.zo
	return min(max(r, k.p.min), k.p.max)
}

// addQ8Go is Run's plain loop.
func (k *AddQ8) addQ8Go(dst, a, b []byte) {
	b, dst = b[:len(a)], dst[:len(a)]
	for i, x := range a {
		dst[i] = byte(k.One(int32(int8(x)), int32(int8(b[i]))))
	}
}
