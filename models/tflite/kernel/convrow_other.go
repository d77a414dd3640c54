//go:build !amd64 || purego

package kernel

const hasConvRowArch = false

func convRowS8Arch(dst, src *int8, npix, step int, offs *int32, ng int, w *int8, nv, n int, corr, qv, qc *int32, tail uint64) {
	panic("kernel: no assembly ConvRowS8")
}
