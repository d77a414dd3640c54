//go:build amd64 && !purego

#include "textflag.h"

// func depthwiseS8Arch(dst *int8, src *int8, filt *int32, taps *int32, nt, npix, step, c int, zp int32, qv *int32, qc *int32, tail uint64)
// npix output pixels of c channels, 16 at a time (the last block masked):
// the accumulator in Z0 over the taps of the pixel, then the double-rounding
// requantization of Requant.vec (see asm_gen.go's vnni epilogue) and a
// narrowing store. Pixel p reads its taps at src + p·step.
TEXT ·depthwiseS8Arch(SB), NOSPLIT, $0-96
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ filt+16(FP), R8
	MOVQ taps+24(FP), R9
	MOVQ nt+32(FP), R10
	LEAQ (R9)(R10*8), R10 // end of the taps
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
	MOVQ tail+88(FP), AX // the channels of the last block
	KMOVW AX, K5

dwpix:
	XORQ BX, BX
	MOVQ qv+72(FP), AX

dwblock:
	KMOVW K2, K1
	LEAQ 16(BX), DX
	CMPQ DX, CX
	JLE dwfull
	KMOVW K5, K1

dwfull:
	LEAQ (SI)(BX*1), R11
	LEAQ (R8)(BX*4), R13
	MOVQ R9, R12
	VPXORD Z0, Z0, Z0

dwtap:
	MOVLQSX 0(R12), DX
	VPMOVSXBD.Z (R11)(DX*1), K1, Z1
	MOVLQSX 4(R12), DX
	VPSUBD Z15, Z1, Z1
	VPMULLD.Z (R13)(DX*4), Z1, K1, Z1
	VPADDD Z1, Z0, Z0
	ADDQ $8, R12
	CMPQ R12, R10
	JLT dwtap

	// requantize Z0
	VPADDD 0(AX), Z0, Z0
	VPSLLVD 192(AX), Z0, Z0
	VPMULDQ 64(AX), Z0, Z24
	VPSRLQ $32, Z0, Z25
	VPMULDQ 128(AX), Z25, Z25
	VPADDQ Z28, Z24, Z24
	VPADDQ Z28, Z25, Z25
	VPSRAQ $31, Z24, Z24
	VPSLLQ $1, Z25, Z25
	VPBLENDMD Z25, Z24, K3, Z0
	VPANDD 320(AX), Z0, Z24
	VPSRAD $31, Z0, Z25
	VMOVDQU32 384(AX), Z26
	VPSUBD Z25, Z26, Z26
	VPSRAVD 256(AX), Z0, Z0
	VPCMPGTD Z26, Z24, K4
	VPADDD Z27, Z0, K4, Z0
	VPADDD Z29, Z0, Z0
	VPMAXSD Z30, Z0, Z0
	VPMINSD Z31, Z0, Z0
	VPMOVDB Z0, K1, (DI)(BX*1)

	ADDQ $448, AX
	ADDQ $16, BX
	CMPQ BX, CX
	JLT dwblock

	ADDQ CX, DI
	ADDQ step+48(FP), SI
	DECQ npix+40(FP)
	JNZ dwpix
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
