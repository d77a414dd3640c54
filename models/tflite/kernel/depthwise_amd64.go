//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

var hasDepthwiseArch = cpu.X86.HasAVX512F

// depthwiseAccArch is DepthwiseAccS8 on the first c channels, c a multiple
// of 16, nt ≥ 1 taps (depthwise_amd64.s).
//
//go:noescape
func depthwiseAccArch(acc *int32, src *int8, filt *int32, taps *int32, nt, c int, zp int32)

// depthwiseAccF32Arch is DepthwiseAccF32 on the first c channels, c a
// multiple of 16, nt ≥ 1 taps.
//
//go:noescape
func depthwiseAccF32Arch(acc, src, filt *float32, taps *int32, nt, c int)
