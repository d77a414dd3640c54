//go:build amd64 && !purego

#include "textflag.h"
#include "transpose16_amd64.h"

// LOAD4 loads four 16-byte rows from R14, R14+cols, +2·cols, +3·cols into
// Z and steps R14 by 4·cols (R12 = cols, R13 = 3·cols).
#define LOAD4(X, Z) \
	VMOVDQU (R14), X \
	VINSERTI32X4 $1, (R14)(R12*1), Z, Z \
	VINSERTI32X4 $2, (R14)(R12*2), Z, Z \
	VINSERTI32X4 $3, (R14)(R13*1), Z, Z \
	LEAQ (R14)(R12*4), R14

// STORE4 stores the four lanes of Z to R15, R15+rows, +2·rows, +3·rows and
// steps R15 by 4·rows (BX = rows, R9 = 3·rows).
#define STORE4(X, Z) \
	VMOVDQU X, (R15) \
	VEXTRACTI32X4 $1, Z, (R15)(BX*1) \
	VEXTRACTI32X4 $2, Z, (R15)(BX*2) \
	VEXTRACTI32X4 $3, Z, (R15)(R9*1) \
	LEAQ (R15)(BX*4), R15

// func transposeBytesAVX512(dst, src *byte, rows, cols, tileRows, tileCols int)
// The tileRows·16 × tileCols·16 top-left corner of the rows×cols matrix
// src, transposed into the cols×rows matrix dst, a 16×16 tile at a time:
// a strip of 16 rows left to right (its writes fill the same 16 bytes of
// the output rows, whose lines the next strip completes).
TEXT ·transposeBytesAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), BX
	MOVQ cols+24(FP), R12
	MOVQ tileRows+32(FP), R10
	LEAQ (BX)(BX*2), R9
	LEAQ (R12)(R12*2), R13
	KMOVQ tp16mask<>(SB), K4
	MOVQ R12, DX
	SHLQ $4, DX                     // 16·cols: a strip of the input
	MOVQ BX, AX
	SHLQ $4, AX                     // 16·rows: a tile column of the output
	TESTQ R10, R10
	JZ done

strip:
	MOVQ tileCols+40(FP), R11
	MOVQ SI, CX                     // this tile's input
	MOVQ DI, R8                     // this tile's output

tile:
	MOVQ CX, R14
	LOAD4(X8, Z8)
	LOAD4(X9, Z9)
	LOAD4(X10, Z10)
	LOAD4(X11, Z11)
	TRANSPOSE16(Z8, Z9, Z10, Z11, Z4, Z5, Z6, Z7)
	MOVQ R8, R15
	STORE4(X4, Z4)
	STORE4(X5, Z5)
	STORE4(X6, Z6)
	STORE4(X7, Z7)
	ADDQ $16, CX
	ADDQ AX, R8
	DECQ R11
	JNZ tile

	ADDQ DX, SI
	ADDQ $16, DI
	DECQ R10
	JNZ strip

done:
	VZEROUPPER
	RET

// func transpose32AVX512(dst, src *uint32, rows, cols, tileRows, tileCols int)
// As transposeBytesAVX512 for 4-byte elements, in 16×16 tiles of 16
// registers: dwords then qwords interleaved within 128-bit lanes, then the
// lanes exchanged in two VSHUFI32X4 steps.
TEXT ·transpose32AVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), BX
	SHLQ $2, BX                     // an output row, in bytes
	MOVQ cols+24(FP), R12
	SHLQ $2, R12                    // an input row, in bytes
	MOVQ tileRows+32(FP), R10
	MOVQ R12, DX
	SHLQ $4, DX                     // a strip of 16 input rows
	MOVQ BX, AX
	SHLQ $4, AX                     // a tile column of the output
	TESTQ R10, R10
	JZ done32

strip32:
	MOVQ tileCols+40(FP), R11
	MOVQ SI, CX
	MOVQ DI, R8

tile32:
	MOVQ CX, R14
	VMOVUPS (R14), Z0
	ADDQ R12, R14
	VMOVUPS (R14), Z1
	ADDQ R12, R14
	VMOVUPS (R14), Z2
	ADDQ R12, R14
	VMOVUPS (R14), Z3
	ADDQ R12, R14
	VMOVUPS (R14), Z4
	ADDQ R12, R14
	VMOVUPS (R14), Z5
	ADDQ R12, R14
	VMOVUPS (R14), Z6
	ADDQ R12, R14
	VMOVUPS (R14), Z7
	ADDQ R12, R14
	VMOVUPS (R14), Z8
	ADDQ R12, R14
	VMOVUPS (R14), Z9
	ADDQ R12, R14
	VMOVUPS (R14), Z10
	ADDQ R12, R14
	VMOVUPS (R14), Z11
	ADDQ R12, R14
	VMOVUPS (R14), Z12
	ADDQ R12, R14
	VMOVUPS (R14), Z13
	ADDQ R12, R14
	VMOVUPS (R14), Z14
	ADDQ R12, R14
	VMOVUPS (R14), Z15
	ADDQ R12, R14
	VPUNPCKLDQ Z1, Z0, Z16
	VPUNPCKHDQ Z1, Z0, Z17
	VPUNPCKLDQ Z3, Z2, Z18
	VPUNPCKHDQ Z3, Z2, Z19
	VPUNPCKLDQ Z5, Z4, Z20
	VPUNPCKHDQ Z5, Z4, Z21
	VPUNPCKLDQ Z7, Z6, Z22
	VPUNPCKHDQ Z7, Z6, Z23
	VPUNPCKLDQ Z9, Z8, Z24
	VPUNPCKHDQ Z9, Z8, Z25
	VPUNPCKLDQ Z11, Z10, Z26
	VPUNPCKHDQ Z11, Z10, Z27
	VPUNPCKLDQ Z13, Z12, Z28
	VPUNPCKHDQ Z13, Z12, Z29
	VPUNPCKLDQ Z15, Z14, Z30
	VPUNPCKHDQ Z15, Z14, Z31
	VPUNPCKLQDQ Z18, Z16, Z0
	VPUNPCKHQDQ Z18, Z16, Z1
	VPUNPCKLQDQ Z19, Z17, Z2
	VPUNPCKHQDQ Z19, Z17, Z3
	VPUNPCKLQDQ Z22, Z20, Z4
	VPUNPCKHQDQ Z22, Z20, Z5
	VPUNPCKLQDQ Z23, Z21, Z6
	VPUNPCKHQDQ Z23, Z21, Z7
	VPUNPCKLQDQ Z26, Z24, Z8
	VPUNPCKHQDQ Z26, Z24, Z9
	VPUNPCKLQDQ Z27, Z25, Z10
	VPUNPCKHQDQ Z27, Z25, Z11
	VPUNPCKLQDQ Z30, Z28, Z12
	VPUNPCKHQDQ Z30, Z28, Z13
	VPUNPCKLQDQ Z31, Z29, Z14
	VPUNPCKHQDQ Z31, Z29, Z15
	VSHUFI32X4 $0x88, Z4, Z0, Z16
	VSHUFI32X4 $0xdd, Z4, Z0, Z17
	VSHUFI32X4 $0x88, Z12, Z8, Z18
	VSHUFI32X4 $0xdd, Z12, Z8, Z19
	VSHUFI32X4 $0x88, Z5, Z1, Z20
	VSHUFI32X4 $0xdd, Z5, Z1, Z21
	VSHUFI32X4 $0x88, Z13, Z9, Z22
	VSHUFI32X4 $0xdd, Z13, Z9, Z23
	VSHUFI32X4 $0x88, Z6, Z2, Z24
	VSHUFI32X4 $0xdd, Z6, Z2, Z25
	VSHUFI32X4 $0x88, Z14, Z10, Z26
	VSHUFI32X4 $0xdd, Z14, Z10, Z27
	VSHUFI32X4 $0x88, Z7, Z3, Z28
	VSHUFI32X4 $0xdd, Z7, Z3, Z29
	VSHUFI32X4 $0x88, Z15, Z11, Z30
	VSHUFI32X4 $0xdd, Z15, Z11, Z31
	VSHUFI32X4 $0x88, Z18, Z16, Z0
	VSHUFI32X4 $0x88, Z19, Z17, Z4
	VSHUFI32X4 $0xdd, Z18, Z16, Z8
	VSHUFI32X4 $0xdd, Z19, Z17, Z12
	VSHUFI32X4 $0x88, Z22, Z20, Z1
	VSHUFI32X4 $0x88, Z23, Z21, Z5
	VSHUFI32X4 $0xdd, Z22, Z20, Z9
	VSHUFI32X4 $0xdd, Z23, Z21, Z13
	VSHUFI32X4 $0x88, Z26, Z24, Z2
	VSHUFI32X4 $0x88, Z27, Z25, Z6
	VSHUFI32X4 $0xdd, Z26, Z24, Z10
	VSHUFI32X4 $0xdd, Z27, Z25, Z14
	VSHUFI32X4 $0x88, Z30, Z28, Z3
	VSHUFI32X4 $0x88, Z31, Z29, Z7
	VSHUFI32X4 $0xdd, Z30, Z28, Z11
	VSHUFI32X4 $0xdd, Z31, Z29, Z15
	MOVQ R8, R15
	VMOVUPS Z0, (R15)
	ADDQ BX, R15
	VMOVUPS Z1, (R15)
	ADDQ BX, R15
	VMOVUPS Z2, (R15)
	ADDQ BX, R15
	VMOVUPS Z3, (R15)
	ADDQ BX, R15
	VMOVUPS Z4, (R15)
	ADDQ BX, R15
	VMOVUPS Z5, (R15)
	ADDQ BX, R15
	VMOVUPS Z6, (R15)
	ADDQ BX, R15
	VMOVUPS Z7, (R15)
	ADDQ BX, R15
	VMOVUPS Z8, (R15)
	ADDQ BX, R15
	VMOVUPS Z9, (R15)
	ADDQ BX, R15
	VMOVUPS Z10, (R15)
	ADDQ BX, R15
	VMOVUPS Z11, (R15)
	ADDQ BX, R15
	VMOVUPS Z12, (R15)
	ADDQ BX, R15
	VMOVUPS Z13, (R15)
	ADDQ BX, R15
	VMOVUPS Z14, (R15)
	ADDQ BX, R15
	VMOVUPS Z15, (R15)
	ADDQ BX, R15
	ADDQ $64, CX
	ADDQ AX, R8
	DECQ R11
	JNZ tile32

	ADDQ DX, SI
	ADDQ $64, DI
	DECQ R10
	JNZ strip32

done32:
	VZEROUPPER
	RET
