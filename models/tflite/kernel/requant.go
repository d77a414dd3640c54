package kernel

import (
	"errors"
	"fmt"
	"math"
)

// Requant turns the int32 accumulators of an int8 convolution or fully
// connected layer into int8 outputs, per output channel j:
//
//	out = clamp(M(acc + Bias[j], Multiplier[j], Shift[j]) + OutZero, Min, Max)
//
// NewRequant makes one whose M is MultiplyByQuantizedMultiplier, as in
// TFLite's reference kernels (gemmlowp's two roundings); NewRequantRuy one
// whose M is MultiplyByQuantizedMultiplierRuy, as in ruy, the GEMM library
// native TFLite runs int8 convolutions and fully connected layers through
// (one rounding). It is immutable and safe for concurrent use.
type Requant struct {
	n       int
	ruy     bool    // single rounding (NewRequantRuy)
	bias    []int32 // len n
	mult    []int32
	lshift  []int32 // max(shift, 0)
	rshift  []int32 // max(-shift, 0)
	rmask   []int32 // (1<<rshift)-1
	rhalf   []int32 // rmask>>1
	outZero int32
	min     int32
	max     int32
	// vec holds the same per-channel values for the amd64 epilogues, 16
	// channels at a time, fields vectors per block. Double rounding:
	// [block][bias, mult, mult of odd lanes moved to even lanes, lshift,
	// rshift, rmask, rhalf][16]. Single rounding (int64 fields hold the
	// channels 0, 2, …, 14 or 1, 3, …, 15 of the block): [block][bias,
	// mult, mult of odd lanes moved to even lanes, round even, round odd,
	// total shift even, total shift odd, round+2⁶² even, round+2⁶² odd,
	// 2^(62-total) even, 2^(62-total) odd]; see the ruy epilogues in
	// asm_gen.go.
	vec    []int32
	fields int
	// neon holds them for the arm64 epilogue, 4 channels at a time. Double
	// rounding: [group of 4][bias, mult, lshift, -rshift][4]. Single
	// rounding: [group of 4][bias[4], mult[4], -total as four int64].
	neon   []int32
	consts [4]int32 // outZero, min, max
	// avx2c holds 2³⁰ as four int64, then outZero, min and max as eight
	// int32 each, then MaxInt32 and MinInt32 as four int64 each, for the
	// AVX2 epilogue.
	avx2c [48]int32
}

// NewRequant checks and prepares the requantization of n output channels.
//
// bias (nil for none) is added to the exact Σ a·b before scaling, so the
// caller folds the input zero point into it: bias[j] - zeroIn·RowSums()[j].
// mult and shift are per channel, as TFLite's QuantizeMultiplier makes them:
// mult in [0, 2³¹) and shift in [-31, 30], positive meaning a left shift;
// a per-tensor scale is given by repeating the one value n times. outZero is
// the output zero point, and [min, max] ⊆ [-128, 127] the fused activation
// range in the output domain.
func NewRequant(n int, bias, mult, shift []int32, outZero, min, max int32) (*Requant, error) {
	return newRequant(false, n, bias, mult, shift, outZero, min, max)
}

// NewRequantRuy is NewRequant with ruy's single rounding in place of the
// reference kernels' two: per output channel j, with total = 31 - Shift[j],
//
//	out = clamp(sat32((int64(acc + Bias[j])·Multiplier[j] + 2^(total-1)) >> total) + OutZero, Min, Max)
//
// where acc + Bias[j] and the addition of OutZero wrap like int32, >> is
// arithmetic and sat32 saturates to int32. This is what native TFLite
// computes for int8 CONV_2D and FULLY_CONNECTED (ruy assumes rather than
// enforces that the result fits in int32; saturating defines the rest). The
// arguments are those of NewRequant.
func NewRequantRuy(n int, bias, mult, shift []int32, outZero, min, max int32) (*Requant, error) {
	return newRequant(true, n, bias, mult, shift, outZero, min, max)
}

func newRequant(ruy bool, n int, bias, mult, shift []int32, outZero, min, max int32) (*Requant, error) {
	switch {
	case n < 0:
		return nil, fmt.Errorf("kernel: requant: %d channels", n)
	case bias != nil && len(bias) != n:
		return nil, fmt.Errorf("kernel: requant: %d biases for %d channels", len(bias), n)
	case len(mult) != n || len(shift) != n:
		return nil, fmt.Errorf("kernel: requant: %d multipliers and %d shifts for %d channels", len(mult), len(shift), n)
	case min > max || min < math.MinInt8 || max > math.MaxInt8:
		return nil, fmt.Errorf("kernel: requant: activation range [%d, %d] is not inside int8", min, max)
	}
	// Vectors are read 16 channels at a time, so pad to whole vectors.
	np := (n + 15) &^ 15
	q := &Requant{
		n: n, ruy: ruy, outZero: outZero, min: min, max: max,
		bias: make([]int32, np), mult: make([]int32, np),
		lshift: make([]int32, np), rshift: make([]int32, np),
		rmask: make([]int32, np), rhalf: make([]int32, np),
	}
	copy(q.bias, bias)
	for j := 0; j < n; j++ {
		m, s := mult[j], shift[j]
		if m < 0 {
			return nil, fmt.Errorf("kernel: requant: channel %d: negative multiplier %d", j, m)
		}
		if s < -31 || s > 30 {
			return nil, fmt.Errorf("kernel: requant: channel %d: shift %d outside [-31, 30]", j, s)
		}
		q.mult[j] = m
		if s > 0 {
			q.lshift[j] = s
		} else {
			q.rshift[j] = -s
		}
		q.rmask[j] = int32(int64(1)<<q.rshift[j] - 1)
		q.rhalf[j] = q.rmask[j] >> 1
	}
	if ruy {
		q.packRuy(np)
	} else {
		q.packDouble(np)
	}
	q.consts = [4]int32{outZero, min, max}
	for l := 0; l < 8; l++ {
		if l%2 == 0 {
			q.avx2c[l] = 1 << 30
		}
		q.avx2c[8+l], q.avx2c[16+l], q.avx2c[24+l] = outZero, min, max
	}
	for l := 0; l < 4; l++ {
		putInt64(q.avx2c[32+2*l:], math.MaxInt32)
		putInt64(q.avx2c[40+2*l:], math.MinInt32)
	}
	return q, nil
}

// Fields per block of Requant.vec in each rounding mode.
const (
	vecFields    = 7
	vecFieldsRuy = 11
)

// packDouble lays out the per-channel values of the double rounding for
// the assembly epilogues.
func (q *Requant) packDouble(np int) {
	q.fields = vecFields
	q.vec = make([]int32, np/16*vecFields*16)
	for j := 0; j < np; j++ {
		blk := q.vec[j/16*vecFields*16:]
		l := j % 16
		blk[0*16+l] = q.bias[j]
		blk[1*16+l] = q.mult[j]
		if l%2 == 1 {
			blk[2*16+l-1] = q.mult[j]
		}
		blk[3*16+l] = q.lshift[j]
		blk[4*16+l] = q.rshift[j]
		blk[5*16+l] = q.rmask[j]
		blk[6*16+l] = q.rhalf[j]
	}
	q.neon = make([]int32, np*4)
	for j := 0; j < np; j++ {
		blk := q.neon[j/4*16:]
		l := j % 4
		blk[0*4+l] = q.bias[j]
		blk[1*4+l] = q.mult[j]
		blk[2*4+l] = q.lshift[j]
		blk[3*4+l] = -q.rshift[j]
	}
}

// packRuy lays out the per-channel values of the single rounding for the
// assembly epilogues. Padding channels get total shift 31 (shift 0), which
// keeps every shift count valid.
func (q *Requant) packRuy(np int) {
	q.fields = vecFieldsRuy
	q.vec = make([]int32, np/16*vecFieldsRuy*16)
	for j := 0; j < np; j++ {
		blk := q.vec[j/16*vecFieldsRuy*16:]
		l := j % 16
		total := int64(31 - q.shift(j))
		blk[0*16+l] = q.bias[j]
		blk[1*16+l] = q.mult[j]
		if l%2 == 1 {
			blk[2*16+l-1] = q.mult[j]
		}
		// int64 fields: lane l/2 of the even or of the odd vector.
		f := 3*16 + l%2*16 + l/2*2
		putInt64(blk[f:], 1<<(total-1))
		putInt64(blk[f+2*16:], total)
		putInt64(blk[f+4*16:], 1<<(total-1)+1<<62)
		putInt64(blk[f+6*16:], 1<<(62-total))
	}
	q.neon = make([]int32, np*4)
	for j := 0; j < np; j++ {
		blk := q.neon[j/4*16:]
		l := j % 4
		blk[0*4+l] = q.bias[j]
		blk[1*4+l] = q.mult[j]
		putInt64(blk[8+2*l:], -int64(31-q.shift(j)))
	}
}

// shift is the shift of channel j as given to NewRequant.
func (q *Requant) shift(j int) int32 { return q.lshift[j] - q.rshift[j] }

// putInt64 stores v in d[0:2] the way a little-endian int64 is laid out.
func putInt64(d []int32, v int64) {
	d[0], d[1] = int32(uint32(v)), int32(uint64(v)>>32)
}

// N is the number of channels q was made for.
func (q *Requant) N() int { return q.n }

// apply requantizes one accumulator of channel j.
func (q *Requant) apply(acc int32, j int) int8 {
	x := acc + q.bias[j]
	var v int32
	if q.ruy {
		v = MultiplyByQuantizedMultiplierRuy(x, q.mult[j], int(q.shift(j)))
	} else {
		v = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x<<q.lshift[j], q.mult[j]), int(q.rshift[j]))
	}
	v += q.outZero
	v = max(q.min, min(q.max, v))
	return int8(v)
}

// errRequantSize is the panic value of a GemmRequant call whose Requant does
// not match B: a bug in the caller.
var errRequantSize = errors.New("kernel: GemmRequant: requant is for a different number of channels")

// GemmRequant computes the int8 outputs out[i*ldo+j] of rows i < m and
// channels j < n: the exact Σ_k a[i*lda+k]·B[j][k] requantized by q. The
// assembly paths (AVX-512 VNNI, AVX2, arm64 SDOT) requantize in registers;
// the others from a small int32 buffer on the stack. Concurrent calls are
// safe on disjoint rows of out. It panics if q was made for another number
// of channels or the slices are too short, which are bugs in the caller.
func (p *PackedS8) GemmRequant(m int, a []int8, lda int, q *Requant, out []int8, ldo int) {
	if m <= 0 || p.n == 0 {
		return
	}
	if q.n != p.n {
		panic(errRequantSize)
	}
	checkArgs("GemmRequant", m, p.n, p.k, len(a), lda, len(out), ldo)
	if p.impl != implGo && p.k > 0 && gemmRequantArch(p, m, a, lda, q, out, ldo) {
		return
	}
	// Otherwise a few rows at a time through a small accumulator buffer.
	var buf [1024]int32
	acc := buf[:]
	if p.n > len(buf) {
		acc = make([]int32, p.n)
	}
	rows := len(acc) / p.n
	for i := 0; i < m; i += rows {
		r := min(rows, m-i)
		p.Gemm(r, a[i*lda:], lda, acc, p.n)
		for x := 0; x < r; x++ {
			o := out[(i+x)*ldo : (i+x)*ldo+p.n]
			for j, v := range acc[x*p.n : x*p.n+p.n] {
				o[j] = q.apply(v, j)
			}
		}
	}
}

// SaturatingRoundingDoublingHighMul returns the high 32 bits of 2·a·b,
// rounded to nearest with ties away from zero, saturating the one overflow
// (a = b = MinInt32). It is gemmlowp's function of the same name.
func SaturatingRoundingDoublingHighMul(a, b int32) int32 {
	if a == math.MinInt32 && b == math.MinInt32 {
		return math.MaxInt32
	}
	ab := int64(a) * int64(b)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - 1<<30
	}
	return int32((ab + nudge) / (1 << 31)) // truncates toward zero, as in C++
}

// RoundingDivideByPOT returns x / 2^exponent rounded to nearest, ties away
// from zero, for exponent in [0, 31]. It is gemmlowp's function of the same
// name.
func RoundingDivideByPOT(x int32, exponent int) int32 {
	mask := int32(int64(1)<<exponent - 1)
	rem := x & mask
	threshold := mask >> 1
	if x < 0 {
		threshold++
	}
	r := x >> exponent
	if rem > threshold {
		r++
	}
	return r
}

// MultiplyByQuantizedMultiplierRuy returns x·mult·2^(shift-31) rounded
// once, to nearest with ties toward +∞, and saturated to int32: ruy's
// MultiplyByQuantizedMultiplier, for shift in [-31, 30].
func MultiplyByQuantizedMultiplierRuy(x, mult int32, shift int) int32 {
	total := 31 - shift
	r := (int64(x)*int64(mult) + int64(1)<<(total-1)) >> total
	return int32(max(math.MinInt32, min(math.MaxInt32, r)))
}

// MultiplyByQuantizedMultiplier returns x·mult·2^(shift-31) rounded the way
// TFLite's reference kernels do (double rounding: first the doubling high
// multiply, then the rounding right shift). A left shift wraps like the
// int32 multiply it is in TFLite.
func MultiplyByQuantizedMultiplier(x, mult int32, shift int) int32 {
	ls, rs := 0, 0
	if shift > 0 {
		ls = shift
	} else {
		rs = -shift
	}
	return RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x<<ls, mult), rs)
}
