package tflite

import (
	"math"

	"edgefleet/models"
)

// TFLite's fixed-point requantization (gemmlowp semantics), reproduced so
// that integer kernels give the same bytes as the reference library.

// quantizeMultiplier splits a real multiplier into a Q31 fixed-point value
// and a power-of-two exponent: real ≈ q * 2^(shift-31).
func quantizeMultiplier(real float64) (q int32, shift int) {
	if real == 0 {
		return 0, 0
	}
	frac, exp := math.Frexp(real)
	qf := int64(math.Round(frac * (1 << 31)))
	if qf == 1<<31 {
		qf /= 2
		exp++
	}
	if exp < -31 {
		return 0, 0
	}
	if exp > 30 {
		exp = 30
		qf = 1<<31 - 1
	}
	return int32(qf), exp
}

// srdhm is SaturatingRoundingDoublingHighMul.
func srdhm(a, b int32) int32 {
	if a == b && a == math.MinInt32 {
		return math.MaxInt32
	}
	ab := int64(a) * int64(b)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - (1 << 30)
	}
	// C++ division truncates toward zero.
	return int32((ab + nudge) / (1 << 31))
}

// rdbpot is RoundingDivideByPOT.
func rdbpot(x int32, exp int) int32 {
	if exp <= 0 {
		return x
	}
	mask := int32(1)<<exp - 1
	rem := x & mask
	thr := mask >> 1
	if x < 0 {
		thr++
	}
	r := x >> exp
	if rem > thr {
		r++
	}
	return r
}

// mbqm is MultiplyByQuantizedMultiplier.
func mbqm(x, q int32, shift int) int32 {
	left, right := 0, 0
	if shift > 0 {
		left = shift
	} else {
		right = -shift
	}
	return rdbpot(srdhm(x*(1<<left), q), right)
}

// mbqmRuy is MultiplyByQuantizedMultiplier with a single rounding step, as
// ruy's GEMM applies it: TFLite routes int8 CONV_2D and FULLY_CONNECTED
// through ruy, and with this rounding the outputs match the native library
// byte for byte (the two-step srdhm+rdbpot form differs on ~0.2% of values).
func mbqmRuy(x, q int32, shift int) int32 {
	total := 31 - shift
	r := (int64(x)*int64(q) + int64(1)<<(total-1)) >> total
	if r > math.MaxInt32 {
		return math.MaxInt32
	}
	if r < math.MinInt32 {
		return math.MinInt32
	}
	return int32(r)
}

// requant holds a per-channel or per-tensor output multiplier.
type requant struct {
	q     []int32
	shift []int
}

func (r *requant) at(c int) (int32, int) {
	if len(r.q) == 1 {
		return r.q[0], r.shift[0]
	}
	return r.q[c], r.shift[c]
}

// kernelArgs returns the multiplier and shift of each of n channels as the
// kernel package's requantizers take them.
func (r *requant) kernelArgs(n int) (mult, shift []int32) {
	mult, shift = make([]int32, n), make([]int32, n)
	for c := range mult {
		q, s := r.at(c)
		mult[c], shift[c] = q, int32(s)
	}
	return mult, shift
}

// actRange returns the clamp range of a quantized output for a fused
// activation (CalculateActivationRangeQuantized).
func actRange(act uint8, t *rtensor) (lo, hi int32) {
	lo, hi = qRange(t.typ)
	if t.quant == nil {
		return lo, hi
	}
	s, zp := t.scale(), t.zp()
	q := func(v float64) int32 { return zp + int32(math.Round(v/s)) }
	switch act {
	case actRelu:
		lo = max(lo, q(0))
	case actRelu6:
		lo = max(lo, q(0))
		hi = min(hi, q(6))
	case actReluN1To1:
		lo = max(lo, q(-1))
		hi = min(hi, q(1))
	}
	return lo, hi
}

func qRange(t models.DType) (int32, int32) {
	switch t {
	case models.Int8:
		return -128, 127
	case models.UInt8:
		return 0, 255
	case models.Int16:
		return -32768, 32767
	}
	return math.MinInt32, math.MaxInt32
}

// Fused activation function codes of the schema.
const (
	actNone      = 0
	actRelu      = 1
	actReluN1To1 = 2
	actRelu6     = 3
	actTanh      = 4
)

func actFloat(act uint8) (lo, hi float32) {
	switch act {
	case actRelu:
		return 0, math.MaxFloat32
	case actRelu6:
		return 0, 6
	case actReluN1To1:
		return -1, 1
	}
	return -math.MaxFloat32, math.MaxFloat32
}

func clamp32(v, lo, hi int32) int32 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// dequantize returns the float value of element i of a quantized tensor.
func isQuantized(t *rtensor) bool {
	return t.quant != nil && len(t.quant.Scale) > 0 && (t.typ == models.Int8 || t.typ == models.UInt8 || t.typ == models.Int16)
}

// qget reads element i of an int8/uint8/int16 tensor as int32.
func qget(t *rtensor, i int) int32 {
	switch t.typ {
	case models.Int8:
		return int32(int8(t.data[i]))
	case models.UInt8:
		return int32(t.data[i])
	case models.Int16:
		return int32(int16(uint16(t.data[2*i]) | uint16(t.data[2*i+1])<<8))
	}
	return 0
}

func qput(t *rtensor, i int, v int32) {
	switch t.typ {
	case models.Int8, models.UInt8:
		t.data[i] = byte(v)
	case models.Int16:
		t.data[2*i] = byte(v)
		t.data[2*i+1] = byte(v >> 8)
	}
}
