package kernel

import "math"

// MinMaxF32 returns the least and the greatest of src (0, 0 when empty).
// NaNs are skipped by the assembly path and may be by the plain one.
func MinMaxF32(src []float32) (lo, hi float32) {
	if len(src) == 0 {
		return 0, 0
	}
	lo, hi = src[0], src[0]
	n := 0
	if hasQuantizeArch && len(src) >= 16 {
		n = len(src) &^ 15
		lo, hi = minMaxArch(&src[0], n)
	}
	for _, v := range src[n:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// QuantizeF32 sets dst[i] = clamp(round(zp + src[i]·inv), -128, 127), with
// the sum in float32 and rounding half away from zero, as TFLite's
// AsymmetricQuantizeFloats (hybrid kernels) does. dst must be as long as src.
func QuantizeF32(dst []int8, src []float32, inv, zp float32) {
	dst = dst[:len(src)]
	n := 0
	if hasQuantizeArch {
		n = len(src) &^ 15
		if n > 0 {
			quantizeArch(&dst[0], &src[0], n, inv, zp)
		}
	}
	for i, v := range src[n:] {
		dst[n+i] = quantize1(v, inv, zp)
	}
}

func quantize1(v, inv, zp float32) int8 {
	x := zp + float32(v*inv) // no fused multiply-add: TFLite rounds the product
	r := math.Round(float64(x))
	return int8(min(max(r, -128), 127))
}
