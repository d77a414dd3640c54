//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

var hasSigmoidArch = cpu.X86.HasAVX512F

// sigmoidArch and siluArch run on len(src) floats, a multiple of 16, with
// AVX-512F (sigmoid_amd64.s).
func sigmoidArch(dst, src []float32) { sigmoidAVX512(&dst[0], &src[0], len(src), 0) }

func siluArch(dst, src []float32) { sigmoidAVX512(&dst[0], &src[0], len(src), 1) }

func expArch(dst, src []float32) { sigmoidAVX512(&dst[0], &src[0], len(src), 2) }

//go:noescape
func sigmoidAVX512(dst, src *float32, n, mode int)
