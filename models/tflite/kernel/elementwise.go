package kernel

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
