//go:build !amd64 || purego

package kernel

const (
	hasTransposeArch   = false
	hasTranspose32Arch = false
)

func transpose32Arch(dst, src []int32, rows, cols, tr, tc int) {
	panic("kernel: no assembly transpose")
}

func transposeBytesArch(dst, src []byte, rows, cols, tr, tc int) {
	panic("kernel: no assembly transpose")
}
