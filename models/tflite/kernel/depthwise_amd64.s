//go:build amd64 && !purego

#include "textflag.h"

// func depthwiseAccArch(acc *int32, src *int8, filt *int32, taps *int32, nt, c int, zp int32)
// For 16 channels at a time, keeps the accumulators in Z0 over all taps.
TEXT ·depthwiseAccArch(SB), NOSPLIT, $0-52
	MOVQ acc+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ filt+16(FP), R8
	MOVQ taps+24(FP), R9
	MOVQ nt+32(FP), R10
	MOVQ c+40(FP), CX
	MOVL zp+48(FP), AX
	VPBROADCASTD AX, Z15
	XORQ BX, BX

chloop:
	VMOVDQU32 (DI)(BX*4), Z0
	MOVQ R9, R11
	MOVQ R10, R12

taploop:
	MOVLQSX 0(R11), AX
	MOVLQSX 4(R11), DX
	ADDQ BX, AX
	ADDQ BX, DX
	VPMOVSXBD (SI)(AX*1), Z1
	VPSUBD Z15, Z1, Z1
	VPMULLD (R8)(DX*4), Z1, Z1
	VPADDD Z1, Z0, Z0
	ADDQ $8, R11
	DECQ R12
	JNZ taploop

	VMOVDQU32 Z0, (DI)(BX*4)
	ADDQ $16, BX
	CMPQ BX, CX
	JLT chloop
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
