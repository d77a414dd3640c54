package kernel

import "math"

// Sigmoid sets dst[i] = 1 / (1 + e^-src[i]) for i < len(src) (dst must be as
// long), in float32 with a Cephes-style exponential: the result is within a
// few float32 ulps of the exact value everywhere. It runs in AVX-512
// assembly where the CPU has it, else in plain Go; dst and src may be the
// same slice.
func Sigmoid(dst, src []float32) { vecF32(dst, src, sigmoidArch, sigmoid1) }

// vecF32 runs arch on the whole multiple of 16 elements where the CPU has
// the assembly, and one on the rest.
func vecF32(dst, src []float32, arch func(dst, src []float32), one func(float32) float32) {
	dst = dst[:len(src)]
	n := 0
	if hasSigmoidArch {
		n = len(src) &^ 15
		if n > 0 {
			arch(dst[:n], src[:n])
		}
	}
	for i, x := range src[n:] {
		dst[n+i] = one(x)
	}
}

// SiLU sets dst[i] = src[i] · Sigmoid(src[i]), the x·σ(x) that YOLO models
// build from LOGISTIC and MUL.
func SiLU(dst, src []float32) {
	vecF32(dst, src, siluArch, func(x float32) float32 { return x * sigmoid1(x) })
}

// Exp sets dst[i] = e^src[i] in float32 (the exponential of Sigmoid, for
// arguments clamped to ±88.38: within a few ulps below overflow).
func Exp(dst, src []float32) { vecF32(dst, src, expArch, exp1) }

// Constants of the exponential (Cephes expf), shared with the assembly.
const (
	expHi    = 88.3762626647949
	expLog2e = 1.44269504088896341
	expC1    = 0.693359375
	expC2    = -2.12194440e-4
	expP0    = 1.9875691500e-4
	expP1    = 1.3981999507e-3
	expP2    = 8.3334519073e-3
	expP3    = 4.1665795894e-2
	expP4    = 1.6666665459e-1
	expP5    = 5.0000001201e-1
)

func sigmoidGo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = sigmoid1(x)
	}
}

// sigmoid1 is the plain-Go sigmoid, the same steps as the assembly.
func sigmoid1(x float32) float32 {
	if x != x {
		return x
	}
	return 1 / (1 + exp1(-x))
}

// exp1 is e^t for t clamped to ±expHi, as the assembly computes it.
func exp1(t float32) float32 {
	if t != t {
		return t
	}
	t = min(max(t, -expHi), expHi)
	y := t * expLog2e
	ni := int32(y + 0.5) // round half up, toward -inf below zero: then fix
	if y+0.5 < 0 && float32(ni) != y+0.5 {
		ni--
	}
	n := float32(ni)
	r := t - n*expC1
	r -= n * expC2
	p := float32(expP0)
	p = p*r + expP1
	p = p*r + expP2
	p = p*r + expP3
	p = p*r + expP4
	p = p*r + expP5
	e := p*(r*r) + r + 1
	// e·2^n in two steps, as n reaches ±128 and 2^±128 is not a float32.
	h := ni >> 1
	e *= math.Float32frombits(uint32(h+127) << 23)
	e *= math.Float32frombits(uint32(ni-h+127) << 23)
	return e
}
