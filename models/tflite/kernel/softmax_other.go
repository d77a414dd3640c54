//go:build !amd64 || purego

package kernel

const hasSoftmaxArch = false

func softmaxI8Arch(dst, src []int8, d int, table *[256]float32, oscale float32, oz, lo, hi int32) {
	panic("kernel: no assembly softmax")
}
