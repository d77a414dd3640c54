package kernel

// Element-wise maxima and clamps for the max pools: whole rows of channels
// at a time, in AVX-512 where the CPU has it (pool_amd64.s), else plain Go.

// MaxInt8 sets dst[i] = max(dst[i], src[i]) for i < len(dst) (src must be
// as long).
func MaxInt8(dst, src []int8) {
	if len(dst) == 0 {
		return
	}
	src = src[:len(dst)]
	if hasPoolArch {
		maxI8Arch(dst, src)
		return
	}
	maxInt8Go(dst, src)
}

// MaxF32 sets dst[i] = src[i] where src[i] > dst[i], for i < len(dst): a NaN
// in src never replaces dst[i], and a NaN in dst stays.
func MaxF32(dst, src []float32) {
	if len(dst) == 0 {
		return
	}
	src = src[:len(dst)]
	if hasPoolArch {
		maxF32Arch(dst, src)
		return
	}
	maxF32Go(dst, src)
}

// ClampInt8 sets x[i] = min(max(x[i], lo), hi).
func ClampInt8(x []int8, lo, hi int8) {
	if len(x) == 0 || lo == -128 && hi == 127 {
		return
	}
	if hasPoolArch {
		clampI8Arch(x, lo, hi)
		return
	}
	clampInt8Go(x, lo, hi)
}

// ClampF32 sets x[i] = min(max(x[i], lo), hi) with Go's min and max (a NaN
// stays NaN); lo must not be a zero (where Go's max orders -0 below +0,
// which the assembly does not), nor either bound a NaN.
func ClampF32(x []float32, lo, hi float32) {
	if len(x) == 0 {
		return
	}
	if hasPoolArch && lo != 0 {
		clampF32Arch(x, lo, hi)
		return
	}
	clampF32Go(x, lo, hi)
}

func maxInt8Go(dst, src []int8) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = max(dst[i], v)
	}
}

func maxF32Go(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		if v > dst[i] {
			dst[i] = v
		}
	}
}

func clampInt8Go(x []int8, lo, hi int8) {
	for i, v := range x {
		x[i] = min(max(v, lo), hi)
	}
}

func clampF32Go(x []float32, lo, hi float32) {
	for i, v := range x {
		x[i] = min(max(v, lo), hi)
	}
}
