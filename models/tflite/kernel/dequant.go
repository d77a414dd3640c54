package kernel

import "fmt"

// DequantF32 turns rows of int32 GEMM sums into float32, as the epilogue of
// TFLite's hybrid convolutions: for each row r of n = len(corr) values,
//
//	o[r·n+j] = min(max(float32(acc[r·n+j]-corr[j])·mul[j] + bias[j], lo), hi)
//
// with the subtraction wrapping in int32 and Go's min and max (the assembly
// agrees except for NaN, which finite sums and parameters cannot make). The
// AVX-512 path rounds the product and the sum each to float32; the plain-Go
// one is that expression as written, which the compiler may fuse into one
// multiply-add where the CPU has it (arm64), as the interpreter always did.
// len(o) must be a whole number of rows and acc, mul and bias as long as
// needed.
func DequantF32(o []float32, acc, corr []int32, mul, bias []float32, lo, hi float32) {
	n := len(corr)
	if len(o) == 0 {
		return
	}
	if n == 0 || len(o)%n != 0 || len(acc) < len(o) || len(mul) < n || len(bias) < n {
		panic(fmt.Sprintf("kernel: DequantF32: len(o)=%d len(acc)=%d n=%d len(mul)=%d len(bias)=%d", len(o), len(acc), n, len(mul), len(bias)))
	}
	if hasDequantArch {
		dequantArch(&o[0], &acc[0], &corr[0], &mul[0], &bias[0], len(o)/n, n, lo, hi)
		return
	}
	dequantGo(o, acc, corr, mul, bias, lo, hi)
}

func dequantGo(o []float32, acc, corr []int32, mul, bias []float32, lo, hi float32) {
	n := len(corr)
	mul, bias = mul[:n], bias[:n]
	for i := 0; i < len(o); i += n {
		r, a := o[i:i+n], acc[i:i+n]
		for j := range r {
			v := float32(a[j]-corr[j])*mul[j] + bias[j]
			r[j] = min(max(v, lo), hi)
		}
	}
}

// BiasClampF32 adds bias to each row of n = len(bias) values of o and clamps
// them to [lo, hi] as a float convolution's epilogue: v < lo becomes lo,
// else v > hi becomes hi (a NaN stays). len(o) must be a whole number of
// rows.
func BiasClampF32(o, bias []float32, lo, hi float32) {
	n := len(bias)
	if len(o) == 0 {
		return
	}
	if n == 0 || len(o)%n != 0 {
		panic(fmt.Sprintf("kernel: BiasClampF32: len(o)=%d n=%d", len(o), n))
	}
	if hasDequantArch {
		biasClampArch(&o[0], &bias[0], len(o)/n, n, lo, hi)
		return
	}
	biasClampGo(o, bias, lo, hi)
}

func biasClampGo(o, bias []float32, lo, hi float32) {
	n := len(bias)
	for i := 0; i < len(o); i += n {
		r := o[i : i+n]
		for j := range r {
			v := r[j] + bias[j]
			if v < lo {
				v = lo
			} else if v > hi {
				v = hi
			}
			r[j] = v
		}
	}
}
