package kernel

import "math"

// SoftmaxInt8 is TFLite's int8 softmax over rows of d values (src and dst
// of the same whole number of rows): per row, a table of
// exp(-scale·beta·(max - q)) indexed by q + 255 - max, the float32 sum of
// the row's table values in order, inv = 1 / (sum·oscale), and then
// round(table value·inv) + oz clamped to [lo, hi]. table[255-v] must be
// exp(-scale·beta·v). Blocks of 16 rows of d ≥ 16 run in AVX-512
// assembly where the CPU has it (the sums across rows, one row a lane, so
// each row's sum adds in the same order), the rest in plain Go; both give
// the same bytes. scratch (16·d floats; made when shorter) keeps a block's
// table values between the sums and the outputs.
func SoftmaxInt8(dst, src []int8, d int, table *[256]float32, oscale float32, oz, lo, hi int32, scratch []float32) {
	if d <= 0 {
		return
	}
	rows := len(src) / d
	dst = dst[:rows*d]
	done := 0
	if hasSoftmaxArch && d >= 16 && rows >= 16 {
		done = rows &^ 15
		if len(scratch) < 16*d {
			scratch = make([]float32, 16*d)
		}
		softmaxI8Arch(dst[:done*d], src[:done*d], d, table, oscale, oz, lo, hi, scratch)
	}
	softmaxInt8Go(dst[done*d:], src[done*d:rows*d], d, table, oscale, oz, lo, hi)
}

// softmaxInt8Go is SoftmaxInt8 in plain Go, row by row.
func softmaxInt8Go(dst, src []int8, d int, table *[256]float32, oscale float32, oz, lo, hi int32) {
	for r := 0; r+d <= len(src); r += d {
		xs, ys := src[r:r+d], dst[r:r+d]
		mx := xs[0]
		for _, v := range xs {
			mx = max(mx, v)
		}
		off := 255 - int32(mx) // off + v is in [0, 255]
		var sum float32
		for _, v := range xs {
			sum += table[uint8(off+int32(v))]
		}
		inv := 1 / (sum * oscale)
		for i, v := range xs {
			p := table[uint8(off+int32(v))] * inv
			ys[i] = int8(min(max(int32(math.Round(float64(p)))+oz, lo), hi))
		}
	}
}

// SoftmaxF32Prep sets each row of d values of dst to (x - the row's
// maximum)·beta, the float32 softmax's argument of the exponential. The
// maximum is taken in any order (AVX-512 where the CPU has it): it is the
// same value but for the sign of a zero, which changes no exponential, and
// a NaN, which makes the row NaN either way.
func SoftmaxF32Prep(dst, src []float32, d int, beta float32) {
	if d <= 0 || len(src) < d {
		return
	}
	rows := len(src) / d
	if hasSoftmaxArch {
		softmaxF32PrepArch(dst[:rows*d], src[:rows*d], d, beta)
		return
	}
	softmaxF32PrepGo(dst, src[:rows*d], d, beta)
}

// SoftmaxF32Norm scales each row of d exponentials in y by float32(1/sum),
// the sum in float64 adding the row's values in order. Blocks of 16 rows
// run in AVX-512 where the CPU has it, a row per lane (so each row adds in
// the same order), the rest in plain Go.
func SoftmaxF32Norm(y []float32, d int) {
	if d <= 0 {
		return
	}
	rows := len(y) / d
	done := 0
	if hasSoftmaxArch && rows >= 16 {
		done = rows &^ 15
		softmaxF32NormArch(y[:done*d], d)
	}
	softmaxF32NormGo(y[done*d:rows*d], d)
}

func softmaxF32PrepGo(dst, src []float32, d int, beta float32) {
	for r := 0; r+d <= len(src); r += d {
		xs, ys := src[r:r+d], dst[r:r+d]
		m := xs[0]
		for _, v := range xs {
			m = max(m, v)
		}
		for i, v := range xs {
			ys[i] = (v - m) * beta
		}
	}
}

func softmaxF32NormGo(y []float32, d int) {
	for r := 0; r+d <= len(y); r += d {
		ys := y[r : r+d]
		var sum float64
		for _, e := range ys {
			sum += float64(e)
		}
		inv := float32(1 / sum)
		for i := range ys {
			ys[i] *= inv
		}
	}
}
