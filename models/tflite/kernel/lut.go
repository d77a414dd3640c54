package kernel

// LUT8 sets dst[i] = table[src[i]] for every byte of src: the int8/uint8
// elementwise operators whose result depends on one input byte (LOGISTIC,
// TANH, requantizing QUANTIZE and CONCATENATION, a fused SiLU) are one such
// pass. With AVX-512 VBMI it looks up 64 bytes at a time from the table held
// in four registers, on arm64 16 at a time with NEON TBL; elsewhere it is
// the plain loop. dst must be at least as long as src; dst and src may be
// the same slice.
func LUT8(dst, src []byte, table *[256]byte) {
	dst = dst[:len(src)]
	n := 0
	if hasLUTArch && len(src) >= 64 {
		n = len(src) &^ 63
		lut8Arch(&dst[0], &src[0], n, table)
	}
	lut8Go(dst[n:], src[n:], table)
}

// lut8Go is LUT8's plain loop, eight bytes per step.
func lut8Go(dst, src []byte, t *[256]byte) {
	dst = dst[:len(src)]
	i := 0
	for ; i+8 <= len(src); i += 8 {
		s, d := src[i:i+8:i+8], dst[i:i+8:i+8]
		d[0], d[1], d[2], d[3] = t[s[0]], t[s[1]], t[s[2]], t[s[3]]
		d[4], d[5], d[6], d[7] = t[s[4]], t[s[5]], t[s[6]], t[s[7]]
	}
	for ; i < len(src); i++ {
		dst[i] = t[src[i]]
	}
}
