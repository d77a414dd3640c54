//go:build amd64 && !purego

package kernel

// hasTransposeArch: transpose_amd64.s needs AVX-512 with VBMI.
var hasTransposeArch = hasVBMI

// hasTranspose32Arch: the 4-byte transpose needs AVX-512F only.
var hasTranspose32Arch = hasSoftmaxArch

// transposeBytesArch transposes the tr×tc top-left corner (multiples of
// 16) of the rows×cols matrix src into dst.
func transposeBytesArch(dst, src []byte, rows, cols, tr, tc int) {
	transposeBytesAVX512(&dst[0], &src[0], rows, cols, tr/16, tc/16)
}

// transpose32Arch: transposeBytesArch for 4-byte elements (AVX-512F).
func transpose32Arch(dst, src []int32, rows, cols, tr, tc int) {
	transpose32AVX512(&dst[0], &src[0], rows, cols, tr/16, tc/16)
}

//go:noescape
func transpose32AVX512(dst, src *int32, rows, cols, tileRows, tileCols int)

//go:noescape
func transposeBytesAVX512(dst, src *byte, rows, cols, tileRows, tileCols int)
