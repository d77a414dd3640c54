//go:build amd64 && !purego

#include "textflag.h"

// tp16: VPERMI2B indices of a 16×16 byte transpose held in four registers
// (rows 4k..4k+3 in register k): byte q = 16c+r of output register k is
// element [r][4k+c], at byte 16·(r%4) + 4k + c of input register r/4,
// taken from the pair (0, 1) for r < 8 and (2, 3) for r ≥ 8 (so bit 6
// picks the pair's second register). The transpose is its own inverse.
DATA tp16<>+0(SB)/8, $0x7060504030201000
DATA tp16<>+8(SB)/8, $0x7060504030201000
DATA tp16<>+16(SB)/8, $0x7161514131211101
DATA tp16<>+24(SB)/8, $0x7161514131211101
DATA tp16<>+32(SB)/8, $0x7262524232221202
DATA tp16<>+40(SB)/8, $0x7262524232221202
DATA tp16<>+48(SB)/8, $0x7363534333231303
DATA tp16<>+56(SB)/8, $0x7363534333231303
DATA tp16<>+64(SB)/8, $0x7464544434241404
DATA tp16<>+72(SB)/8, $0x7464544434241404
DATA tp16<>+80(SB)/8, $0x7565554535251505
DATA tp16<>+88(SB)/8, $0x7565554535251505
DATA tp16<>+96(SB)/8, $0x7666564636261606
DATA tp16<>+104(SB)/8, $0x7666564636261606
DATA tp16<>+112(SB)/8, $0x7767574737271707
DATA tp16<>+120(SB)/8, $0x7767574737271707
DATA tp16<>+128(SB)/8, $0x7868584838281808
DATA tp16<>+136(SB)/8, $0x7868584838281808
DATA tp16<>+144(SB)/8, $0x7969594939291909
DATA tp16<>+152(SB)/8, $0x7969594939291909
DATA tp16<>+160(SB)/8, $0x7a6a5a4a3a2a1a0a
DATA tp16<>+168(SB)/8, $0x7a6a5a4a3a2a1a0a
DATA tp16<>+176(SB)/8, $0x7b6b5b4b3b2b1b0b
DATA tp16<>+184(SB)/8, $0x7b6b5b4b3b2b1b0b
DATA tp16<>+192(SB)/8, $0x7c6c5c4c3c2c1c0c
DATA tp16<>+200(SB)/8, $0x7c6c5c4c3c2c1c0c
DATA tp16<>+208(SB)/8, $0x7d6d5d4d3d2d1d0d
DATA tp16<>+216(SB)/8, $0x7d6d5d4d3d2d1d0d
DATA tp16<>+224(SB)/8, $0x7e6e5e4e3e2e1e0e
DATA tp16<>+232(SB)/8, $0x7e6e5e4e3e2e1e0e
DATA tp16<>+240(SB)/8, $0x7f6f5f4f3f2f1f0f
DATA tp16<>+248(SB)/8, $0x7f6f5f4f3f2f1f0f
GLOBL tp16<>(SB), RODATA|NOPTR, $256

DATA sm16c<>+0(SB)/4, $0x3f800000 // 1.0
DATA sm16c<>+4(SB)/4, $0x3f000000 // 0.5
DATA sm16c<>+8(SB)/4, $255
DATA sm16c<>+16(SB)/8, $0xff00ff00ff00ff00 // rows 8..15 of a column register
GLOBL sm16c<>(SB), RODATA|NOPTR, $24

// TRANSPOSE16 sets o0..o3 to the transpose of the 16×16 bytes in i0..i3
// (Z0, Z1 scratch; K4 the mask of rows 8..15).
#define TRANSPOSE16(i0, i1, i2, i3, o0, o1, o2, o3) \
	TP16ONE(i0, i1, i2, i3, 0, o0) \
	TP16ONE(i0, i1, i2, i3, 64, o1) \
	TP16ONE(i0, i1, i2, i3, 128, o2) \
	TP16ONE(i0, i1, i2, i3, 192, o3)

#define TP16ONE(i0, i1, i2, i3, off, o) \
	VMOVDQU64 tp16<>+off(SB), Z0 \
	VMOVDQA64 Z0, Z1 \
	VPERMI2B  i1, i0, Z0 \
	VPERMI2B  i3, i2, Z1 \
	VPBLENDMB Z1, Z0, K4, o

// COLUMN: column lane of register Z (X its low lane) as int32 + off (Z3),
// the table's values at them to E, added to the sums (Z2).
#define COLUMN(X, Z, lane, E) \
	VEXTRACTI32X4 lane, Z, X0 \
	VPMOVSXBD X0, Z0 \
	VPADDD Z3, Z0, Z0 \
	KXNORW K1, K1, K1 \
	VGATHERDPS (R8)(Z0*4), K1, E \
	VADDPS E, Z2, Z2

// OUTPUT: round(E·inv (Z2)) half away from zero + oz, clamped, as bytes
// into lane of O.
#define OUTPUT(E, lane, O) \
	VMULPS Z2, E, Z0 \
	VRNDSCALEPS $0x0b, Z0, Z1 \
	VSUBPS Z1, Z0, Z0 \
	VCMPPS $13, Z28, Z0, K3 \
	VADDPS Z29, Z1, K3, Z1 \
	VCVTTPS2DQ Z1, Z1 \
	VPADDD Z27, Z1, Z1 \
	VPMAXSD Z26, Z1, Z1 \
	VPMINSD Z25, Z1, Z1 \
	VPMOVDB Z1, X0 \
	VINSERTI32X4 lane, X0, O, O

// func softmaxI8x16AVX512(dst, src *int8, blocks int, table *[256]float32, oscale float32, oz, lo, hi int32)
//
// SoftmaxInt8 for rows of 16, 16 rows (256 bytes) a block: the block
// transposed in registers (VPERMI2B) so that a register lane is a column;
// the row maxima are the maxima across columns; each column's table values
// (a gather) stay in Z8..Z23 and add to the sums a row per lane in column
// order, as the Go loop adds them; the outputs, computed a column at a
// time, transposed back and stored.
TEXT ·softmaxI8x16AVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), BX
	MOVQ table+24(FP), R8
	VBROADCASTSS oscale+32(FP), Z30
	VBROADCASTSS oz+36(FP), Z27
	VBROADCASTSS lo+40(FP), Z26
	VBROADCASTSS hi+44(FP), Z25
	VBROADCASTSS sm16c<>+0(SB), Z29 // 1.0
	VBROADCASTSS sm16c<>+4(SB), Z28 // 0.5
	VPBROADCASTD sm16c<>+8(SB), Z24 // 255
	KMOVQ sm16c<>+16(SB), K4
	TESTQ BX, BX
	JZ done

block:
	VMOVDQU64 0(SI), Z8
	VMOVDQU64 64(SI), Z9
	VMOVDQU64 128(SI), Z10
	VMOVDQU64 192(SI), Z11
	TRANSPOSE16(Z8, Z9, Z10, Z11, Z4, Z5, Z6, Z7)

	// Row maxima: across the four column registers, then their lanes.
	VPMAXSB Z5, Z4, Z0
	VPMAXSB Z6, Z0, Z0
	VPMAXSB Z7, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPMAXSB Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPMAXSB X1, X0, X0
	VPMOVSXBD X0, Z0
	VPSUBD Z0, Z24, Z3              // off = 255 - max
	VPXORD Z2, Z2, Z2               // sums
	COLUMN(X4, Z4, $0, Z8)
	COLUMN(X4, Z4, $1, Z9)
	COLUMN(X4, Z4, $2, Z10)
	COLUMN(X4, Z4, $3, Z11)
	COLUMN(X5, Z5, $0, Z12)
	COLUMN(X5, Z5, $1, Z13)
	COLUMN(X5, Z5, $2, Z14)
	COLUMN(X5, Z5, $3, Z15)
	COLUMN(X6, Z6, $0, Z16)
	COLUMN(X6, Z6, $1, Z17)
	COLUMN(X6, Z6, $2, Z18)
	COLUMN(X6, Z6, $3, Z19)
	COLUMN(X7, Z7, $0, Z20)
	COLUMN(X7, Z7, $1, Z21)
	COLUMN(X7, Z7, $2, Z22)
	COLUMN(X7, Z7, $3, Z23)
	VMULPS Z30, Z2, Z2
	VDIVPS Z2, Z29, Z2              // inv = 1 / (sum·oscale)
	OUTPUT(Z8, $0, Z4)
	OUTPUT(Z9, $1, Z4)
	OUTPUT(Z10, $2, Z4)
	OUTPUT(Z11, $3, Z4)
	OUTPUT(Z12, $0, Z5)
	OUTPUT(Z13, $1, Z5)
	OUTPUT(Z14, $2, Z5)
	OUTPUT(Z15, $3, Z5)
	OUTPUT(Z16, $0, Z6)
	OUTPUT(Z17, $1, Z6)
	OUTPUT(Z18, $2, Z6)
	OUTPUT(Z19, $3, Z6)
	OUTPUT(Z20, $0, Z7)
	OUTPUT(Z21, $1, Z7)
	OUTPUT(Z22, $2, Z7)
	OUTPUT(Z23, $3, Z7)
	TRANSPOSE16(Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)
	VMOVDQU64 Z8, 0(DI)
	VMOVDQU64 Z9, 64(DI)
	VMOVDQU64 Z10, 128(DI)
	VMOVDQU64 Z11, 192(DI)
	ADDQ $256, SI
	ADDQ $256, DI
	DECQ BX
	JNZ block

done:
	VZEROUPPER
	RET
