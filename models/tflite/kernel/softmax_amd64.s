//go:build amd64 && !purego

#include "textflag.h"
#include "transpose16_amd64.h"
#include "softmax_amd64.h"

DATA smiota<>+0(SB)/4, $0
DATA smiota<>+4(SB)/4, $1
DATA smiota<>+8(SB)/4, $2
DATA smiota<>+12(SB)/4, $3
DATA smiota<>+16(SB)/4, $4
DATA smiota<>+20(SB)/4, $5
DATA smiota<>+24(SB)/4, $6
DATA smiota<>+28(SB)/4, $7
DATA smiota<>+32(SB)/4, $8
DATA smiota<>+36(SB)/4, $9
DATA smiota<>+40(SB)/4, $10
DATA smiota<>+44(SB)/4, $11
DATA smiota<>+48(SB)/4, $12
DATA smiota<>+52(SB)/4, $13
DATA smiota<>+56(SB)/4, $14
DATA smiota<>+60(SB)/4, $15
GLOBL smiota<>(SB), RODATA|NOPTR, $64

// SUMCOLS adds the table values of the four columns in the lanes of Z
// (bytes, a row each) to the sums Z22, in lane order (off in Z23).
#define SUMCOLS(Z) \
	SUMCOL(Z, $0) \
	SUMCOL(Z, $1) \
	SUMCOL(Z, $2) \
	SUMCOL(Z, $3)

#define SUMCOL(Z, lane) \
	VEXTRACTI32X4 lane, Z, X0 \
	VPMOVSXBD X0, Z2 \
	TABLESUM

// TABLESUM adds the table (R8) values at Z2 + off (Z23) to the sums Z22,
// and keeps them at R9 (the scratch, a column of 16 floats a step).
#define TABLESUM \
	VPADDD Z23, Z2, Z2 \
	KXNORW K1, K1, K1 \
	VXORPS Z3, Z3, Z3 \
	VGATHERDPS (R8)(Z2*4), K1, Z3 \
	VADDPS Z3, Z22, Z22 \
	VMOVUPS Z3, (R9) \
	ADDQ $64, R9

// OUTCOL: the kept column at R9 times inv (Z22), as bytes into lane of O.
#define OUTCOL(O, lane) \
	VMULPS (R9), Z22, Z1 \
	QOUT \
	VPMOVDB Z2, X0 \
	VINSERTI32X4 lane, X0, O, O \
	ADDQ $64, R9

#define OUTCOLS(O) \
	OUTCOL(O, $0) \
	OUTCOL(O, $1) \
	OUTCOL(O, $2) \
	OUTCOL(O, $3)

// STORE4D stores the four lanes of Z to R14, R14+d, +2·d, +3·d and steps
// R14 by 4·d (R12 = d, R13 = 3·d).
#define STORE4D(X, Z) \
	VMOVDQU X, (R14) \
	VEXTRACTI32X4 $1, Z, (R14)(R12*1) \
	VEXTRACTI32X4 $2, Z, (R14)(R12*2) \
	VEXTRACTI32X4 $3, Z, (R14)(R13*1) \
	LEAQ (R14)(R12*4), R14

DATA smc<>+0(SB)/4, $0x3f800000 // 1.0
DATA smc<>+4(SB)/4, $0x3f000000 // 0.5
DATA smc<>+8(SB)/4, $0x80808080 // int8 -128 ×4
GLOBL smc<>(SB), RODATA|NOPTR, $12

// func softmaxI8AVX512(dst, src *int8, blocks, d int, table *[256]float32, oscale float32, oz, lo, hi int32, scratch *float32)
//
// Blocks of 16 rows of d ≥ 16 int8 values. Per block: (1) each row's max,
// off = 255 - max to the frame; (2) the 16 rows' sums with a row per lane,
// column by column (a dword gather of the column's bytes, then of the
// table), so each row adds its values in order as the Go loop does;
// inv = 1/(sum·oscale) to the frame; (3) each row again, 16 values a
// vector: table value·inv rounded half away from zero (trunc, +1 where the
// fraction is ≥ 0.5), + oz, clamped, stored as bytes.
//
// Frame: off [16]int32 at 0(SP), inv [16]float32 at 64(SP).
TEXT ·softmaxI8AVX512(SB), NOSPLIT, $128-64
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), BX
	MOVQ d+24(FP), DX
	MOVQ table+32(FP), R8
	VBROADCASTSS oscale+40(FP), Z30
	VBROADCASTSS oz+44(FP), Z27
	VBROADCASTSS lo+48(FP), Z26
	VBROADCASTSS hi+52(FP), Z25
	VBROADCASTSS smc<>+0(SB), Z29   // 1.0
	VBROADCASTSS smc<>+4(SB), Z28   // 0.5
	VPBROADCASTD smc<>+8(SB), Z24   // -128 in every byte
	VPBROADCASTD d+24(FP), Z31
	VPMULLD smiota<>(SB), Z31, Z31  // row r's offset r·d, lane r
	KMOVQ tp16mask<>(SB), K4
	TESTQ BX, BX
	JZ done

block:
	// (1) row maxima.
	XORQ R11, R11
	MOVQ SI, R9

rowmax:
	VMOVDQA64 Z24, Z0
	MOVQ R9, R13
	MOVQ DX, CX

maxloop:
	CMPQ CX, $64
	JLT maxtail
	VPMAXSB (R13), Z0, Z0
	ADDQ $64, R13
	SUBQ $64, CX
	JMP maxloop

maxtail:
	TESTQ CX, CX
	JZ maxred
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVQ AX, K2
	VMOVDQA64 Z24, Z1
	VMOVDQU8 (R13), K2, Z1
	VPMAXSB Z1, Z0, Z0

maxred:
	VEXTRACTI64X4 $1, Z0, Y1
	VPMAXSB Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPMAXSB X1, X0, X0
	VPSRLDQ $8, X0, X1
	VPMAXSB X1, X0, X0
	VPSRLDQ $4, X0, X1
	VPMAXSB X1, X0, X0
	VPSRLDQ $2, X0, X1
	VPMAXSB X1, X0, X0
	VPSRLDQ $1, X0, X1
	VPMAXSB X1, X0, X0
	VMOVD X0, AX
	MOVBLSX AX, AX
	MOVL $255, R10
	SUBL AX, R10
	MOVL R10, 0(SP)(R11*4)
	ADDQ DX, R9
	INCQ R11
	CMPQ R11, $16
	JLT rowmax

	// (2) sums, a row per lane, columns in order.
	VMOVDQU32 0(SP), Z23            // off
	VPXORD Z22, Z22, Z22            // sum
	XORQ R12, R12
	MOVQ scratch+56(FP), R9         // the table values, column by column

	CMPB ·hasVBMI(SB), $0
	JEQ sumlow

	// With VBMI: 16 columns at a time, the 16×16 bytes of the 16 rows
	// transposed in registers (Z4..Z7, a column a lane), then one table
	// gather a column; the last d mod 16 columns as below (from sumhigh,
	// as d ≥ 16).
	MOVQ DX, R12                    // LOAD4's row stride
	LEAQ (DX)(DX*2), R13            // and 3 rows
	XORQ R11, R11                   // first column of the block

sumblk:
	LEAQ 16(R11), AX
	CMPQ AX, DX
	JGT sumrest
	LEAQ (SI)(R11*1), R14
	LOAD4(X8, Z8)
	LOAD4(X9, Z9)
	LOAD4(X10, Z10)
	LOAD4(X11, Z11)
	TRANSPOSE16(Z8, Z9, Z10, Z11, Z4, Z5, Z6, Z7)
	SUMCOLS(Z4)
	SUMCOLS(Z5)
	SUMCOLS(Z6)
	SUMCOLS(Z7)
	ADDQ $16, R11
	JMP sumblk

sumrest:
	MOVQ R11, R12
	JMP sumtest

sumlow: // columns 0..2: the dword at the column, its low byte
	LEAQ (SI)(R12*1), R13
	KXNORW K1, K1, K1
	VPXORD Z2, Z2, Z2
	VPGATHERDD (R13)(Z31*1), K1, Z2
	VPSLLD $24, Z2, Z2
	VPSRAD $24, Z2, Z2
	TABLESUM
	INCQ R12
	CMPQ R12, $3
	JLT sumlow

sumhigh: // columns 3..d-1: the dword ending at the column, its high byte
	LEAQ -3(SI)(R12*1), R13
	KXNORW K1, K1, K1
	VPXORD Z2, Z2, Z2
	VPGATHERDD (R13)(Z31*1), K1, Z2
	VPSRAD $24, Z2, Z2
	TABLESUM
	INCQ R12

sumtest:
	CMPQ R12, DX
	JLT sumhigh

	VMULPS Z30, Z22, Z22
	VDIVPS Z22, Z29, Z22            // inv = 1 / (sum·oscale)
	VMOVUPS Z22, 64(SP)

	// (3) outputs. With VBMI: 16 columns at a time from the kept table
	// values (a column a register, a row a lane), transposed back to rows;
	// the last d mod 16 columns, and all of them without VBMI, row by row
	// from column R12 with a table gather.
	XORQ R12, R12
	CMPB ·hasVBMI(SB), $0
	JEQ rows
	MOVQ scratch+56(FP), R9
	MOVQ DX, R12
	LEAQ (DX)(DX*2), R13
	XORQ R11, R11                   // first column of the block

outblk:
	LEAQ 16(R11), AX
	CMPQ AX, DX
	JGT outrest
	OUTCOLS(Z4)
	OUTCOLS(Z5)
	OUTCOLS(Z6)
	OUTCOLS(Z7)
	TRANSPOSE16(Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)
	LEAQ (DI)(R11*1), R14
	STORE4D(X8, Z8)
	STORE4D(X9, Z9)
	STORE4D(X10, Z10)
	STORE4D(X11, Z11)
	ADDQ $16, R11
	JMP outblk

outrest:
	MOVQ R11, R12
	CMPQ R12, DX
	JEQ blockend

rows:
	XORQ R11, R11
	MOVQ SI, R9
	MOVQ DI, R10

rowout:
	VPBROADCASTD 0(SP)(R11*4), Z5   // off
	VBROADCASTSS 64(SP)(R11*4), Z6  // inv
	LEAQ (R9)(R12*1), R13
	LEAQ (R10)(R12*1), R14
	MOVQ DX, CX
	SUBQ R12, CX

outloop:
	CMPQ CX, $16
	JLT outtail
	VPMOVSXBD (R13), Z0
	VPADDD Z5, Z0, Z0
	KXNORW K1, K1, K1
	VPXORD Z1, Z1, Z1
	VGATHERDPS (R8)(Z0*4), K1, Z1
	VMULPS Z6, Z1, Z1               // p
	QOUT
	VPMOVDB Z2, (R14)
	ADDQ $16, R13
	ADDQ $16, R14
	SUBQ $16, CX
	JMP outloop

outtail:
	TESTQ CX, CX
	JZ rownext
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K2
	VPMOVSXBD (R13), K2, Z0
	VPADDD Z5, Z0, Z0
	KMOVW K2, K1
	VPXORD Z1, Z1, Z1
	VGATHERDPS (R8)(Z0*4), K1, Z1
	VMULPS Z6, Z1, Z1
	QOUT
	VPMOVDB Z2, K2, (R14)

rownext:
	ADDQ DX, R9
	ADDQ DX, R10
	INCQ R11
	CMPQ R11, $16
	JLT rowout

blockend:
	MOVQ DX, AX
	SHLQ $4, AX
	ADDQ AX, SI
	ADDQ AX, DI
	DECQ BX
	JNZ block

done:
	VZEROUPPER
	RET
