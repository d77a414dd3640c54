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
