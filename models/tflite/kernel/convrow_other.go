//go:build !amd64 || purego

package kernel

const hasConvRowArch = false

func convRowS8Arch(dst, src *int8, npix, step int, offs *int32, ng int, w *int8, nv, n int, corr, qv, qc *int32, tail uint64) {
	panic("kernel: no assembly ConvRowS8")
}

func requantRowArch(out *int8, acc *int32, add int32, colAdd *int32, nv int, qv, qc *int32, tail uint64) {
	panic("kernel: no assembly RequantRow")
}
