//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

var hasDequantArch = cpu.X86.HasAVX512F

// dequantArch and biasClampArch run on rows rows of n values with AVX-512F
// (dequant_amd64.s); n > 0, the last vector of a row masked.
//
//go:noescape
func dequantArch(o *float32, acc, corr *int32, mul, bias *float32, rows, n int, lo, hi float32)

//go:noescape
func biasClampArch(o, bias *float32, rows, n int, lo, hi float32)
