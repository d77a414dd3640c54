//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

// hasPoolArch: the pool kernels (pool_amd64.s) need AVX-512 F and BW.
var hasPoolArch = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

func maxI8Arch(dst, src []int8) { maxI8AVX512(&dst[0], &src[0], len(dst)) }

func maxF32Arch(dst, src []float32) { maxF32AVX512(&dst[0], &src[0], len(dst)) }

func clampI8Arch(x []int8, lo, hi int8) { clampI8AVX512(&x[0], len(x), lo, hi) }

func clampF32Arch(x []float32, lo, hi float32) { clampF32AVX512(&x[0], len(x), lo, hi) }

//go:noescape
func maxI8AVX512(dst, src *int8, n int)

//go:noescape
func maxF32AVX512(dst, src *float32, n int)

//go:noescape
func clampI8AVX512(x *int8, n int, lo, hi int8)

//go:noescape
func clampF32AVX512(x *float32, n int, lo, hi float32)
