//go:build !amd64 || purego

package kernel

const hasDequantArch = false

func dequantArch(o *float32, acc, corr *int32, mul, bias *float32, rows, n int, lo, hi float32) {
	panic("kernel: no assembly dequantization")
}

func biasClampArch(o, bias *float32, rows, n int, lo, hi float32) {
	panic("kernel: no assembly bias")
}
