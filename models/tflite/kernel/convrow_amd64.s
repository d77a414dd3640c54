//go:build amd64 && !purego

#include "textflag.h"

// RQRUY requantizes the int32 accumulators in z with the single rounding
// of Requant.vec's block at AX (see vnniRuy in asm_gen.go). Z24, Z25
// temporaries, Z26 an offset added first, Z27/Z28 MaxInt32/MinInt32 as
// int64, Z29..Z31 output zero point, min, max, K3 the odd lanes.
#define RQRUY(z) \
	VPADDD Z26, z, z \
	VPADDD 0(AX), z, z \
	VPMULDQ 64(AX), z, Z24 \
	VPSRLQ $32, z, Z25 \
	VPMULDQ 128(AX), Z25, Z25 \
	VPADDQ 192(AX), Z24, Z24 \
	VPADDQ 256(AX), Z25, Z25 \
	VPSRAVQ 320(AX), Z24, Z24 \
	VPSRAVQ 384(AX), Z25, Z25 \
	VPMINSQ Z27, Z24, Z24 \
	VPMINSQ Z27, Z25, Z25 \
	VPMAXSQ Z28, Z24, Z24 \
	VPMAXSQ Z28, Z25, Z25 \
	VPSLLQ $32, Z25, Z25 \
	VPBLENDMD Z25, Z24, K3, z \
	VPADDD Z29, z, z \
	VPMAXSD Z30, z, z \
	VPMINSD Z31, z, z

// func convRowS8Arch(dst, src *int8, npix, step int, offs *int32, ng int, w *int8, nv, n int, corr, qv, qc *int32, tail uint64)
// Four pixels at a time (then one), one 16-channel vector at a time: per
// 4-byte group, its weights in Z20 and each pixel's bytes broadcast, made
// unsigned (xor 0x80, Z21) and multiplied in with VPDPBUSD.
TEXT ·convRowS8Arch(SB), NOSPLIT, $0-104
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ npix+16(FP), CX
	MOVQ step+24(FP), R8
	LEAQ (R8)(R8*2), R9
	MOVQ offs+32(FP), R10
	MOVQ ng+40(FP), R11
	LEAQ (R10)(R11*4), R11 // end of the groups
	MOVQ qc+88(FP), DX
	VPBROADCASTD (DX), Z29
	VPBROADCASTD 4(DX), Z30
	VPBROADCASTD 8(DX), Z31
	MOVL $0x7fffffff, DX
	VPBROADCASTQ DX, Z27
	MOVQ $-0x80000000, DX
	VPBROADCASTQ DX, Z28
	MOVL $0x80808080, DX
	VPBROADCASTD DX, Z21
	MOVL $0xAAAA, DX
	KMOVW DX, K3
	MOVL $0xFFFF, DX
	KMOVW DX, K2
	MOVQ tail+96(FP), DX
	KMOVW DX, K4

quad:
	CMPQ CX, $4
	JLT single
	XORQ BX, BX
	MOVQ qv+80(FP), AX

quadvec:
	// R13: the weights of vector BX
	MOVQ ng+40(FP), R13
	IMULQ BX, R13
	SHLQ $6, R13
	ADDQ w+48(FP), R13
	MOVQ R10, R12
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3

quadgrp:
	MOVLQSX (R12), DX
	ADDQ SI, DX
	VMOVDQU32 (R13), Z20
	VPXORD.BCST (DX), Z21, Z4
	VPXORD.BCST (DX)(R8*1), Z21, Z5
	VPXORD.BCST (DX)(R8*2), Z21, Z6
	VPXORD.BCST (DX)(R9*1), Z21, Z7
	VPDPBUSD Z20, Z4, Z0
	VPDPBUSD Z20, Z5, Z1
	VPDPBUSD Z20, Z6, Z2
	VPDPBUSD Z20, Z7, Z3
	ADDQ $4, R12
	ADDQ $64, R13
	CMPQ R12, R11
	JLT quadgrp

	MOVQ corr+72(FP), DX
	MOVQ BX, R12
	SHLQ $6, R12
	VMOVDQU32 (DX)(R12*1), Z26
	RQRUY(Z0)
	RQRUY(Z1)
	RQRUY(Z2)
	RQRUY(Z3)
	KMOVW K2, K1
	LEAQ 1(BX), DX
	CMPQ DX, nv+56(FP)
	JLT quadfull
	KMOVW K4, K1

quadfull:
	MOVQ BX, DX
	SHLQ $4, DX
	ADDQ DI, DX
	MOVQ n+64(FP), R12
	VPMOVDB Z0, K1, (DX)
	VPMOVDB Z1, K1, (DX)(R12*1)
	VPMOVDB Z2, K1, (DX)(R12*2)
	LEAQ (DX)(R12*2), DX
	VPMOVDB Z3, K1, (DX)(R12*1)
	ADDQ $704, AX
	INCQ BX
	CMPQ BX, nv+56(FP)
	JLT quadvec

	MOVQ n+64(FP), DX
	LEAQ (DI)(DX*4), DI
	LEAQ (SI)(R8*4), SI
	SUBQ $4, CX
	JMP quad

single:
	TESTQ CX, CX
	JZ done
	XORQ BX, BX
	MOVQ qv+80(FP), AX

singlevec:
	MOVQ ng+40(FP), R13
	IMULQ BX, R13
	SHLQ $6, R13
	ADDQ w+48(FP), R13
	MOVQ R10, R12
	VPXORD Z0, Z0, Z0

singlegrp:
	MOVLQSX (R12), DX
	VPXORD.BCST (SI)(DX*1), Z21, Z4
	VPDPBUSD (R13), Z4, Z0
	ADDQ $4, R12
	ADDQ $64, R13
	CMPQ R12, R11
	JLT singlegrp

	MOVQ corr+72(FP), DX
	MOVQ BX, R12
	SHLQ $6, R12
	VMOVDQU32 (DX)(R12*1), Z26
	RQRUY(Z0)
	KMOVW K2, K1
	LEAQ 1(BX), DX
	CMPQ DX, nv+56(FP)
	JLT singlefull
	KMOVW K4, K1

singlefull:
	MOVQ BX, DX
	SHLQ $4, DX
	VPMOVDB Z0, K1, (DI)(DX*1)
	ADDQ $704, AX
	INCQ BX
	CMPQ BX, nv+56(FP)
	JLT singlevec

	ADDQ n+64(FP), DI
	ADDQ R8, SI
	DECQ CX
	JMP single

done:
	VZEROUPPER
	RET

// func requantRowArch(out *int8, acc *int32, add int32, colAdd *int32, nv int, qv, qc *int32, tail uint64)
TEXT ·requantRowArch(SB), NOSPLIT, $0-64
	MOVQ out+0(FP), DI
	MOVQ acc+8(FP), SI
	MOVL add+16(FP), DX
	VPBROADCASTD DX, Z26
	MOVQ colAdd+24(FP), R8
	MOVQ nv+32(FP), CX
	MOVQ qv+40(FP), AX
	MOVQ qc+48(FP), DX
	VPBROADCASTD (DX), Z29
	VPBROADCASTD 4(DX), Z30
	VPBROADCASTD 8(DX), Z31
	MOVL $0x7fffffff, DX
	VPBROADCASTQ DX, Z27
	MOVQ $-0x80000000, DX
	VPBROADCASTQ DX, Z28
	MOVL $0xAAAA, DX
	KMOVW DX, K3
	MOVL $0xFFFF, DX
	KMOVW DX, K1

rrvec:
	CMPQ CX, $1
	JNE rrfull
	MOVQ tail+56(FP), DX
	KMOVW DX, K1

rrfull:
	VMOVDQU32.Z (SI), K1, Z0
	VPADDD.Z (R8), Z0, K1, Z0
	RQRUY(Z0)
	VPMOVDB Z0, K1, (DI)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $16, DI
	ADDQ $704, AX
	DECQ CX
	JNZ rrvec
	VZEROUPPER
	RET
