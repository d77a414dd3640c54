//go:build amd64 && !purego

#include "textflag.h"

#include "transpose16_amd64.h"
#include "softmax_amd64.h"

DATA sm16c<>+0(SB)/4, $0x3f800000 // 1.0
DATA sm16c<>+4(SB)/4, $0x3f000000 // 0.5
DATA sm16c<>+8(SB)/4, $255
GLOBL sm16c<>(SB), RODATA|NOPTR, $12

// COLUMN: column lane of register Z (X its low lane) as int32 + off (Z3),
// the table's values at them to E, added to the sums (Z2).
#define COLUMN(X, Z, lane, E) \
	VEXTRACTI32X4 lane, Z, X0 \
	VPMOVSXBD X0, Z0 \
	VPADDD Z3, Z0, Z0 \
	KXNORW K1, K1, K1 \
	VGATHERDPS (R8)(Z0*4), K1, E \
	VADDPS E, Z2, Z2

// OUTPUT: round(E·inv (Z31)) half away from zero + oz, clamped (QOUT),
// as bytes into lane of O.
#define OUTPUT(E, lane, O) \
	VMULPS Z31, E, Z1 \
	QOUT \
	VPMOVDB Z2, X0 \
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
	KMOVQ tp16mask<>(SB), K4
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
	VDIVPS Z2, Z29, Z31             // inv = 1 / (sum·oscale)
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
