package kernel

// TransposeBytes writes the cols×rows transpose of the rows×cols byte
// matrix src to dst. Whole 16×16 tiles run in AVX-512 (VPERMI2B) where the
// CPU has it, the edges and other CPUs in 32×32 tiles of plain Go.
func TransposeBytes(dst, src []byte, rows, cols int) {
	transpose(dst, src, rows, cols, hasTransposeArch, transposeBytesArch)
}

// Transpose32 is TransposeBytes for 4-byte elements (float32 bits, int32):
// whole 16×16 tiles in AVX-512F where the CPU has it.
func Transpose32(dst, src []int32, rows, cols int) {
	transpose(dst, src, rows, cols, hasTranspose32Arch, transpose32Arch)
}

// transpose runs arch on the top-left corner of whole 16×16 tiles when
// has, and transposeTiles on the rest.
func transpose[T any](dst, src []T, rows, cols int, has bool, arch func(dst, src []T, rows, cols, tr, tc int)) {
	n := rows * cols
	if n == 0 {
		return
	}
	dst, src = dst[:n], src[:n]
	tr, tc := 0, 0
	if has && rows >= 16 && cols >= 16 {
		tr, tc = rows&^15, cols&^15
		arch(dst, src, rows, cols, tr, tc)
	}
	// The right edge (columns tc..cols of every row), then the bottom edge
	// (rows tr..rows of columns 0..tc).
	transposeTiles(dst, src, rows, cols, 0, rows, tc, cols)
	transposeTiles(dst, src, rows, cols, tr, rows, 0, tc)
}

// transposeTiles transposes rows r0..r1, columns c0..c1 of the rows×cols
// matrix src into dst, in 32×32 tiles.
func transposeTiles[T any](dst, src []T, rows, cols, r0, r1, c0, c1 int) {
	const tile = 32
	for rt := r0; rt < r1; rt += tile {
		re := min(r1, rt+tile)
		for ct := c0; ct < c1; ct += tile {
			ce := min(c1, ct+tile)
			for r := rt; r < re; r++ {
				row := src[r*cols:][:ce]
				for c := ct; c < ce; c++ {
					dst[c*rows+r] = row[c]
				}
			}
		}
	}
}
