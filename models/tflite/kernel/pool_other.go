//go:build !amd64 || purego

package kernel

const hasPoolArch = false

func maxI8Arch(dst, src []int8) { panic("kernel: no assembly max") }

func maxF32Arch(dst, src []float32) { panic("kernel: no assembly max") }

func clampI8Arch(x []int8, lo, hi int8) { panic("kernel: no assembly clamp") }

func clampF32Arch(x []float32, lo, hi float32) { panic("kernel: no assembly clamp") }
