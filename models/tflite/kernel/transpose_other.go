//go:build !amd64 || purego

package kernel

const hasTransposeArch = false

func transposeBytesArch(dst, src []byte, rows, cols, tr, tc int) {
	panic("kernel: no assembly transpose")
}
