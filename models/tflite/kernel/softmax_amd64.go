//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

// hasSoftmaxArch: softmax_amd64.s needs AVX-512 F and BW.
var hasSoftmaxArch = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

// hasVBMI: rows of 16 transpose blocks with VPERMI2B (softmax16_amd64.s).
var hasVBMI = hasSoftmaxArch && cpu.X86.HasAVX512VBMI

// softmaxI8Arch runs on whole blocks of 16 rows of d ≥ 16; scratch holds
// at least 16·d floats.
func softmaxI8Arch(dst, src []int8, d int, table *[256]float32, oscale float32, oz, lo, hi int32, scratch []float32) {
	if d == 16 && hasVBMI {
		softmaxI8x16AVX512(&dst[0], &src[0], len(src)/256, table, oscale, oz, lo, hi)
		return
	}
	softmaxI8AVX512(&dst[0], &src[0], len(src)/(16*d), d, table, oscale, oz, lo, hi, &scratch[:16*d][0])
}

//go:noescape
func softmaxI8AVX512(dst, src *int8, blocks, d int, table *[256]float32, oscale float32, oz, lo, hi int32, scratch *float32)

//go:noescape
func softmaxI8x16AVX512(dst, src *int8, blocks int, table *[256]float32, oscale float32, oz, lo, hi int32)

func softmaxF32PrepArch(dst, src []float32, d int, beta float32) {
	softmaxF32PrepAVX512(&dst[0], &src[0], len(src)/d, d, beta)
}

// softmaxF32NormArch runs on whole blocks of 16 rows.
func softmaxF32NormArch(y []float32, d int) {
	if d == 16 {
		softmaxF32Norm16AVX512(&y[0], len(y)/256)
		return
	}
	softmaxF32NormAVX512(&y[0], len(y)/(16*d), d)
}

//go:noescape
func softmaxF32PrepAVX512(dst, src *float32, rows, d int, beta float32)

//go:noescape
func softmaxF32NormAVX512(y *float32, blocks, d int)

//go:noescape
func softmaxF32Norm16AVX512(y *float32, blocks int)
