//go:build !amd64 || purego

package kernel

const (
	hasDepthwiseArch   = false
	hasDepthwiseS8Arch = false
)

func depthwiseS8Arch(dst, src *int8, filt, taps *int32, nt, npix, step, c int, zp int32, qv, qc *int32, tail uint64) {
	panic("kernel: no assembly depthwise")
}

func depthwiseAccF32Arch(acc, src, filt *float32, taps *int32, nt, c int) {
	panic("kernel: no assembly depthwise")
}
