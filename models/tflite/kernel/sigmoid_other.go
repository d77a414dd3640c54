//go:build !amd64 || purego

package kernel

const hasSigmoidArch = false

func sigmoidArch(dst, src []float32) { panic("kernel: no assembly sigmoid") }

func siluArch(dst, src []float32) { panic("kernel: no assembly silu") }

func expArch(dst, src []float32) { panic("kernel: no assembly exp") }
