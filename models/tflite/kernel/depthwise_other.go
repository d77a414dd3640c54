//go:build !amd64 || purego

package kernel

const hasDepthwiseArch = false

func depthwiseAccArch(acc *int32, src *int8, filt *int32, taps *int32, nt, c int, zp int32) {
	panic("kernel: no assembly depthwise")
}

func depthwiseAccF32Arch(acc, src, filt *float32, taps *int32, nt, c int) {
	panic("kernel: no assembly depthwise")
}
