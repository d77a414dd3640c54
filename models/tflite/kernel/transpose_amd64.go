//go:build amd64 && !purego

package kernel

// hasTransposeArch: transpose_amd64.s needs AVX-512 with VBMI.
var hasTransposeArch = hasVBMI

// transposeBytesArch transposes the tr×tc top-left corner (multiples of
// 16) of the rows×cols matrix src into dst.
func transposeBytesArch(dst, src []byte, rows, cols, tr, tc int) {
	transposeBytesAVX512(&dst[0], &src[0], rows, cols, tr/16, tc/16)
}

//go:noescape
func transposeBytesAVX512(dst, src *byte, rows, cols, tileRows, tileCols int)
