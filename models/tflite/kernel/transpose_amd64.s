//go:build amd64 && !purego

#include "textflag.h"
#include "transpose16_amd64.h"

// STORE4 stores the four lanes of Z to R14, R14+rows, +2·rows, +3·rows and
// steps R14 by 4·rows (BX = rows, R9 = 3·rows).
#define STORE4(X, Z) \
	VMOVDQU X, (R14) \
	VEXTRACTI32X4 $1, Z, (R14)(BX*1) \
	VEXTRACTI32X4 $2, Z, (R14)(BX*2) \
	VEXTRACTI32X4 $3, Z, (R14)(R9*1) \
	LEAQ (R14)(BX*4), R14

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
	MOVQ R8, R14
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
// registers (TRANSPOSE16X32).
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
	TRANSPOSE16X32
	MOVQ R8, R14
	VMOVUPS Z0, (R14)
	ADDQ BX, R14
	VMOVUPS Z1, (R14)
	ADDQ BX, R14
	VMOVUPS Z2, (R14)
	ADDQ BX, R14
	VMOVUPS Z3, (R14)
	ADDQ BX, R14
	VMOVUPS Z4, (R14)
	ADDQ BX, R14
	VMOVUPS Z5, (R14)
	ADDQ BX, R14
	VMOVUPS Z6, (R14)
	ADDQ BX, R14
	VMOVUPS Z7, (R14)
	ADDQ BX, R14
	VMOVUPS Z8, (R14)
	ADDQ BX, R14
	VMOVUPS Z9, (R14)
	ADDQ BX, R14
	VMOVUPS Z10, (R14)
	ADDQ BX, R14
	VMOVUPS Z11, (R14)
	ADDQ BX, R14
	VMOVUPS Z12, (R14)
	ADDQ BX, R14
	VMOVUPS Z13, (R14)
	ADDQ BX, R14
	VMOVUPS Z14, (R14)
	ADDQ BX, R14
	VMOVUPS Z15, (R14)
	ADDQ BX, R14
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
