//go:build !amd64 || purego

package kernel

const hasPairArch = false

func lut8x2Arch(dst, a, b *byte, n int, table *[PairTableLen]byte) {
	panic("kernel: no assembly pair table")
}

const hasArithArch = false

func arithF32Arch(dst, a, b *float32, n, mode int, lo, hi float32) {
	panic("kernel: no assembly float arithmetic")
}
