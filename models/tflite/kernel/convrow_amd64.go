//go:build amd64 && !purego

package kernel

var hasConvRowArch = hasVNNI

// convRowS8Arch is ConvRowS8.Run with the single rounding, AVX-512 VNNI:
// ng 4-byte groups at offs, weights [nv][ng][16][4], corr the -128·Σw
// correction of the unsigned trick, tail the channels of the last vector
// (convrow_amd64.s).
//
//go:noescape
func convRowS8Arch(dst, src *int8, npix, step int, offs *int32, ng int, w *int8, nv, n int, corr, qv, qc *int32, tail uint64)

// requantRowArch is Requant.RequantRow with the single rounding on nv
// 16-channel vectors, tail masking the last (convrow_amd64.s).
//
//go:noescape
func requantRowArch(out *int8, acc *int32, add int32, colAdd *int32, nv int, qv, qc *int32, tail uint64)
