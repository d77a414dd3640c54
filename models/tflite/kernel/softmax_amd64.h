// Shared by softmax_amd64.s and softmax16_amd64.s: the int8 softmax's
// output step (Z28 = 0.5, Z29 = 1.0, Z27 = oz, Z26 = lo, Z25 = hi).

// QOUT: Z1 (p = table value·inv) rounded half away from zero (trunc, +1
// where the fraction, exact, is ≥ 0.5), + oz, clamped: int32 in Z2.
#define QOUT \
	VRNDSCALEPS $0x0b, Z1, Z2 \
	VSUBPS Z2, Z1, Z3 \
	VCMPPS $13, Z28, Z3, K3 \
	VADDPS Z29, Z2, K3, Z2 \
	VCVTTPS2DQ Z2, Z2 \
	VPADDD Z27, Z2, Z2 \
	VPMAXSD Z26, Z2, Z2 \
	VPMINSD Z25, Z2, Z2
