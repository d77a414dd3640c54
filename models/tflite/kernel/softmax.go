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
// the same bytes.
func SoftmaxInt8(dst, src []int8, d int, table *[256]float32, oscale float32, oz, lo, hi int32) {
	if d <= 0 {
		return
	}
	rows := len(src) / d
	dst = dst[:rows*d]
	done := 0
	if hasSoftmaxArch && d >= 16 && rows >= 16 {
		done = rows &^ 15
		softmaxI8Arch(dst[:done*d], src[:done*d], d, table, oscale, oz, lo, hi)
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
