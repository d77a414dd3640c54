//go:build !amd64 || purego

package kernel

const hasQuantizeArch = false

func minMaxArch(src *float32, n int) (lo, hi float32) { panic("kernel: no assembly min/max") }

func quantizeArch(dst *int8, src *float32, n int, inv, zp float32) {
	panic("kernel: no assembly quantize")
}
