package kernel

// PairTableLen is the length of a table for LUT8x2: one byte for each pair
// of input bytes (a<<8 | b) and three bytes of padding, since the assembly
// reads four bytes at each index.
const PairTableLen = 1<<16 + 3

// LUT8x2 sets dst[i] = table[a[i]<<8 | b[i]]: a quantized ADD, SUB or MUL
// whose exact result for every pair of input bytes was worked out at load.
// With AVX-512 it gathers 16 results at a time (VPGATHERDD); elsewhere it is
// the plain loop. a, b and dst must have the same length.
func LUT8x2(dst, a, b []byte, table *[PairTableLen]byte) {
	b, dst = b[:len(a)], dst[:len(a)]
	n := 0
	if hasPairArch && len(a) >= 16 {
		n = len(a) &^ 15
		lut8x2Arch(&dst[0], &a[0], &b[0], n, table)
	}
	lut8x2Go(dst[n:], a[n:], b[n:], table)
}

// lut8x2Go is LUT8x2's plain loop.
func lut8x2Go(dst, a, b []byte, t *[PairTableLen]byte) {
	b, dst = b[:len(a)], dst[:len(a)]
	for i, x := range a {
		dst[i] = t[int(x)<<8|int(b[i])]
	}
}
