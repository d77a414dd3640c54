//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

var hasDepthwiseArch = cpu.X86.HasAVX512F

// hasDepthwiseS8Arch: depthwiseS8Arch also needs VPDPWSSD.
var hasDepthwiseS8Arch = hasVNNI

// depthwiseS8Arch is DepthwiseS8 with the double rounding, nt ≥ 1 taps, the
// filter as WidenDepthwiseS8 makes it;
// tail masks the channels of the last 16-channel block (depthwise_amd64.s).
//
//go:noescape
func depthwiseS8Arch(dst, src *int8, filt, taps *int32, nt, npix, step, c int, zp int32, qv, qc *int32, tail uint64)

// depthwiseAccF32Arch is DepthwiseAccF32 on the first c channels, c a
// multiple of 16, nt ≥ 1 taps.
//
//go:noescape
func depthwiseAccF32Arch(acc, src, filt *float32, taps *int32, nt, c int)
