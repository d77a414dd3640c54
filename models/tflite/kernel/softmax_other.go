//go:build !amd64 || purego

package kernel

const hasSoftmaxArch = false

func softmaxI8Arch(dst, src []int8, d int, table *[256]float32, oscale float32, oz, lo, hi int32, scratch []float32) {
	panic("kernel: no assembly softmax")
}

func softmaxF32PrepArch(dst, src []float32, d int, beta float32) {
	panic("kernel: no assembly softmax")
}

func softmaxF32NormArch(y []float32, d int) { panic("kernel: no assembly softmax") }
