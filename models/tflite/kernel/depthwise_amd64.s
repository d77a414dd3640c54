//go:build amd64 && !purego

#include "textflag.h"

// RQLOAD loads the block of Requant.vec (double rounding) at AX into
// Z10..Z14, Z16, Z17: bias, multiplier, multiplier of the odd lanes, left
// shift, right shift, its mask and half the mask.
#define RQLOAD \
	VMOVDQU32 0(AX), Z10 \
	VMOVDQU32 64(AX), Z11 \
	VMOVDQU32 128(AX), Z12 \
	VMOVDQU32 192(AX), Z13 \
	VMOVDQU32 256(AX), Z14 \
	VMOVDQU32 320(AX), Z16 \
	VMOVDQU32 384(AX), Z17

// RQDBL requantizes the int32 accumulators in z with the double rounding
// of the block RQLOAD loaded (see asm_gen.go's vnni epilogue). Z24..Z26
// temporaries, Z27 ones, Z28 2³⁰ as int64, Z29..Z31 output zero point,
// min, max, K3 the odd lanes, K4 scratch.
#define RQDBL(z) \
	VPADDD Z10, z, z \
	VPSLLVD Z13, z, z \
	VPMULDQ Z11, z, Z24 \
	VPSRLQ $32, z, Z25 \
	VPMULDQ Z12, Z25, Z25 \
	VPADDQ Z28, Z24, Z24 \
	VPADDQ Z28, Z25, Z25 \
	VPSRAQ $31, Z24, Z24 \
	VPSLLQ $1, Z25, Z25 \
	VPBLENDMD Z25, Z24, K3, z \
	VPANDD Z16, z, Z24 \
	VPSRAD $31, z, Z25 \
	VPSUBD Z25, Z17, Z26 \
	VPSRAVD Z14, z, z \
	VPCMPGTD Z26, Z24, K4 \
	VPADDD Z27, z, K4, z \
	VPADDD Z29, z, z \
	VPMAXSD Z30, z, z \
	VPMINSD Z31, z, z

// RQDBL4 is RQDBL on Z0..Z3 at once, step by step, so that the four
// dependency chains overlap (temporaries Z4..Z9, Z18, Z19, masks K4..K7).
#define RQDBL4 \
	VPADDD Z10, Z0, Z0 \
	VPADDD Z10, Z1, Z1 \
	VPADDD Z10, Z2, Z2 \
	VPADDD Z10, Z3, Z3 \
	VPSLLVD Z13, Z0, Z0 \
	VPSLLVD Z13, Z1, Z1 \
	VPSLLVD Z13, Z2, Z2 \
	VPSLLVD Z13, Z3, Z3 \
	VPMULDQ Z11, Z0, Z4 \
	VPMULDQ Z11, Z1, Z6 \
	VPMULDQ Z11, Z2, Z8 \
	VPMULDQ Z11, Z3, Z18 \
	VPSRLQ $32, Z0, Z5 \
	VPSRLQ $32, Z1, Z7 \
	VPSRLQ $32, Z2, Z9 \
	VPSRLQ $32, Z3, Z19 \
	VPMULDQ Z12, Z5, Z5 \
	VPMULDQ Z12, Z7, Z7 \
	VPMULDQ Z12, Z9, Z9 \
	VPMULDQ Z12, Z19, Z19 \
	VPADDQ Z28, Z4, Z4 \
	VPADDQ Z28, Z6, Z6 \
	VPADDQ Z28, Z8, Z8 \
	VPADDQ Z28, Z18, Z18 \
	VPADDQ Z28, Z5, Z5 \
	VPADDQ Z28, Z7, Z7 \
	VPADDQ Z28, Z9, Z9 \
	VPADDQ Z28, Z19, Z19 \
	VPSRAQ $31, Z4, Z4 \
	VPSRAQ $31, Z6, Z6 \
	VPSRAQ $31, Z8, Z8 \
	VPSRAQ $31, Z18, Z18 \
	VPSLLQ $1, Z5, Z5 \
	VPSLLQ $1, Z7, Z7 \
	VPSLLQ $1, Z9, Z9 \
	VPSLLQ $1, Z19, Z19 \
	VPBLENDMD Z5, Z4, K3, Z0 \
	VPBLENDMD Z7, Z6, K3, Z1 \
	VPBLENDMD Z9, Z8, K3, Z2 \
	VPBLENDMD Z19, Z18, K3, Z3 \
	VPANDD Z16, Z0, Z4 \
	VPANDD Z16, Z1, Z6 \
	VPANDD Z16, Z2, Z8 \
	VPANDD Z16, Z3, Z18 \
	VPSRAD $31, Z0, Z5 \
	VPSRAD $31, Z1, Z7 \
	VPSRAD $31, Z2, Z9 \
	VPSRAD $31, Z3, Z19 \
	VPSUBD Z5, Z17, Z5 \
	VPSUBD Z7, Z17, Z7 \
	VPSUBD Z9, Z17, Z9 \
	VPSUBD Z19, Z17, Z19 \
	VPSRAVD Z14, Z0, Z0 \
	VPSRAVD Z14, Z1, Z1 \
	VPSRAVD Z14, Z2, Z2 \
	VPSRAVD Z14, Z3, Z3 \
	VPCMPGTD Z5, Z4, K4 \
	VPCMPGTD Z7, Z6, K5 \
	VPCMPGTD Z9, Z8, K6 \
	VPCMPGTD Z19, Z18, K7 \
	VPADDD Z27, Z0, K4, Z0 \
	VPADDD Z27, Z1, K5, Z1 \
	VPADDD Z27, Z2, K6, Z2 \
	VPADDD Z27, Z3, K7, Z3 \
	VPADDD Z29, Z0, Z0 \
	VPADDD Z29, Z1, Z1 \
	VPADDD Z29, Z2, Z2 \
	VPADDD Z29, Z3, Z3 \
	VPMAXSD Z30, Z0, Z0 \
	VPMAXSD Z30, Z1, Z1 \
	VPMAXSD Z30, Z2, Z2 \
	VPMAXSD Z30, Z3, Z3 \
	VPMINSD Z31, Z0, Z0 \
	VPMINSD Z31, Z1, Z1 \
	VPMINSD Z31, Z2, Z2 \
	VPMINSD Z31, Z3, Z3

// DWBLOCK starts 16 channels (BX) of the pixels at SI: K1 their mask,
// R11 their source, R13 their filter, R12 the first tap.
#define DWBLOCK \
	KMOVW K2, K1 \
	LEAQ 16(BX), DX \
	CMPQ DX, CX \
	JLE 2(PC) \
	KMOVW tail+88(FP), K1 \
	LEAQ (SI)(BX*1), R11 \
	MOVQ filt+16(FP), R13 \
	LEAQ (R13)(BX*4), R13 \
	MOVQ taps+24(FP), R12

// func depthwiseS8Arch(dst *int8, src *int8, filt *int32, taps *int32, nt, npix, step, c int, zp int32, qv *int32, qc *int32, tail uint64)
// npix output pixels of c channels, four pixels at a time (then one), 16
// channels at a time (the last block masked). Each filter value is the low
// int16 of its int32 (high half zero), so VPDPWSSD on the sign-extended
// source adds the exact s·f; Σf over the taps (Z9, by VPDPWSSD with ones)
// takes zp·Σf off at the end. Then the double-rounding requantization and a
// narrowing store. Pixel p reads its taps at src + p·step.
TEXT ·depthwiseS8Arch(SB), NOSPLIT, $0-96
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ step+48(FP), R8
	LEAQ (R8)(R8*2), R9
	MOVQ taps+24(FP), R10
	MOVQ nt+32(FP), DX
	LEAQ (R10)(DX*8), R10 // end of the taps
	MOVQ c+56(FP), CX
	MOVL zp+64(FP), AX
	VPBROADCASTD AX, Z15
	MOVQ qc+80(FP), DX
	VPBROADCASTD (DX), Z29  // output zero point
	VPBROADCASTD 4(DX), Z30 // min
	VPBROADCASTD 8(DX), Z31 // max
	MOVL $1, AX
	VPBROADCASTD AX, Z27
	MOVQ $0x40000000, AX
	VPBROADCASTQ AX, Z28
	MOVL $0xAAAA, AX
	KMOVW AX, K3
	MOVL $0xFFFF, AX
	KMOVW AX, K2

dwquad:
	CMPQ npix+40(FP), $4
	JLT dwpix
	XORQ BX, BX
	MOVQ qv+72(FP), AX

dwqblock:
	DWBLOCK
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z9, Z9, Z9

dwqtap:
	MOVLQSX 0(R12), DX
	ADDQ R11, DX
	VPMOVSXBD.Z (DX), K1, Z4
	VPMOVSXBD.Z (DX)(R8*1), K1, Z5
	VPMOVSXBD.Z (DX)(R8*2), K1, Z6
	VPMOVSXBD.Z (DX)(R9*1), K1, Z7
	MOVLQSX 4(R12), DX
	VMOVDQU32.Z (R13)(DX*4), K1, Z8
	VPDPWSSD Z8, Z4, Z0
	VPDPWSSD Z8, Z5, Z1
	VPDPWSSD Z8, Z6, Z2
	VPDPWSSD Z8, Z7, Z3
	VPDPWSSD Z8, Z27, Z9
	ADDQ $8, R12
	CMPQ R12, R10
	JLT dwqtap

	VPMULLD Z15, Z9, Z9
	VPSUBD Z9, Z0, Z0
	VPSUBD Z9, Z1, Z1
	VPSUBD Z9, Z2, Z2
	VPSUBD Z9, Z3, Z3
	RQLOAD
	RQDBL4
	LEAQ (DI)(BX*1), DX
	VPMOVDB Z0, X0
	VMOVDQU8 X0, K1, (DX)
	VPMOVDB Z1, X1
	VMOVDQU8 X1, K1, (DX)(CX*1)
	VPMOVDB Z2, X2
	VMOVDQU8 X2, K1, (DX)(CX*2)
	LEAQ (DX)(CX*2), DX
	VPMOVDB Z3, X3
	VMOVDQU8 X3, K1, (DX)(CX*1)

	ADDQ $448, AX
	ADDQ $16, BX
	CMPQ BX, CX
	JLT dwqblock

	LEAQ (DI)(CX*4), DI
	LEAQ (SI)(R8*4), SI
	SUBQ $4, npix+40(FP)
	JMP dwquad

dwpix:
	CMPQ npix+40(FP), $0
	JLE dwdone
	XORQ BX, BX
	MOVQ qv+72(FP), AX

dwblock:
	DWBLOCK
	VPXORD Z0, Z0, Z0
	VPXORD Z9, Z9, Z9

dwtap:
	MOVLQSX 0(R12), DX
	VPMOVSXBD.Z (R11)(DX*1), K1, Z4
	MOVLQSX 4(R12), DX
	VMOVDQU32.Z (R13)(DX*4), K1, Z8
	VPDPWSSD Z8, Z4, Z0
	VPDPWSSD Z8, Z27, Z9
	ADDQ $8, R12
	CMPQ R12, R10
	JLT dwtap

	VPMULLD Z15, Z9, Z9
	VPSUBD Z9, Z0, Z0
	RQLOAD
	RQDBL(Z0)
	VPMOVDB Z0, X0
	VMOVDQU8 X0, K1, (DI)(BX*1)

	ADDQ $448, AX
	ADDQ $16, BX
	CMPQ BX, CX
	JLT dwblock

	ADDQ CX, DI
	ADDQ R8, SI
	DECQ npix+40(FP)
	JMP dwpix

dwdone:
	VZEROUPPER
	RET

// func depthwiseAccF32Arch(acc, src, filt *float32, taps *int32, nt, c int)
TEXT ·depthwiseAccF32Arch(SB), NOSPLIT, $0-48
	MOVQ acc+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ filt+16(FP), R8
	MOVQ taps+24(FP), R9
	MOVQ nt+32(FP), R10
	MOVQ c+40(FP), CX
	XORQ BX, BX

fchloop:
	VMOVUPS (DI)(BX*4), Z0
	MOVQ R9, R11
	MOVQ R10, R12

ftaploop:
	MOVLQSX 0(R11), AX
	MOVLQSX 4(R11), DX
	ADDQ BX, AX
	ADDQ BX, DX
	VMOVUPS (SI)(AX*4), Z1
	VFMADD231PS (R8)(DX*4), Z1, Z0
	ADDQ $8, R11
	DECQ R12
	JNZ ftaploop

	VMOVUPS Z0, (DI)(BX*4)
	ADDQ $16, BX
	CMPQ BX, CX
	JLT fchloop
	VZEROUPPER
	RET
