//go:build amd64 && !purego

#include "textflag.h"

// rowMask sets K1 to the lanes of a row's last, partial vector (n mod 16)
// and R13 to the row's whole vectors; n in R12.
#define rowMask \
	MOVQ R12, CX \
	ANDQ $15, CX \
	MOVL $1, AX \
	SHLL CX, AX \
	DECL AX \
	KMOVW AX, K1 \
	MOVQ R12, R13 \
	SHRQ $4, R13

// func dequantArch(o *float32, acc, corr *int32, mul, bias *float32, rows, n int, lo, hi float32)
// o = min(max(float32(acc-corr)·mul + bias, lo), hi) per row of n; MAXPS
// and MINPS take v as the first source, so a bound of +0 wins over -0 as
// with Go's max.
TEXT ·dequantArch(SB), NOSPLIT, $0-64
	MOVQ o+0(FP), DI
	MOVQ acc+8(FP), SI
	MOVQ corr+16(FP), R8
	MOVQ mul+24(FP), R9
	MOVQ bias+32(FP), R10
	MOVQ rows+40(FP), R11
	MOVQ n+48(FP), R12
	VBROADCASTSS lo+56(FP), Z30
	VBROADCASTSS hi+60(FP), Z31
	rowMask

drow:
	XORQ BX, BX
	MOVQ R13, CX
	TESTQ CX, CX
	JZ dtail

dvec:
	VMOVDQU32 (SI)(BX*1), Z0
	VPSUBD (R8)(BX*1), Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS (R9)(BX*1), Z0, Z0
	VADDPS (R10)(BX*1), Z0, Z0
	VMAXPS Z30, Z0, Z0
	VMINPS Z31, Z0, Z0
	VMOVUPS Z0, (DI)(BX*1)
	ADDQ $64, BX
	DECQ CX
	JNZ dvec

dtail:
	KORTESTW K1, K1
	JZ dnext
	VMOVDQU32.Z (SI)(BX*1), K1, Z0
	VMOVDQU32.Z (R8)(BX*1), K1, Z1
	VPSUBD Z1, Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMOVUPS.Z (R9)(BX*1), K1, Z1
	VMULPS Z1, Z0, Z0
	VMOVUPS.Z (R10)(BX*1), K1, Z1
	VADDPS Z1, Z0, Z0
	VMAXPS Z30, Z0, Z0
	VMINPS Z31, Z0, Z0
	VMOVUPS Z0, K1, (DI)(BX*1)

dnext:
	LEAQ (R12*4), AX
	ADDQ AX, SI
	ADDQ AX, DI
	DECQ R11
	JNZ drow
	VZEROUPPER
	RET

// func biasClampArch(o, bias *float32, rows, n int, lo, hi float32)
// o = clamp(o + bias) per row of n: MAXPS(lo, v) is "v < lo ? lo : v" and
// MINPS(hi, v) "v > hi ? hi : v", NaN kept, as biasClampGo.
TEXT ·biasClampArch(SB), NOSPLIT, $0-40
	MOVQ o+0(FP), DI
	MOVQ bias+8(FP), R10
	MOVQ rows+16(FP), R11
	MOVQ n+24(FP), R12
	VBROADCASTSS lo+32(FP), Z30
	VBROADCASTSS hi+36(FP), Z31
	rowMask

brow:
	XORQ BX, BX
	MOVQ R13, CX
	TESTQ CX, CX
	JZ btail

bvec:
	VMOVUPS (DI)(BX*1), Z0
	VADDPS (R10)(BX*1), Z0, Z0
	VMAXPS Z0, Z30, Z0
	VMINPS Z0, Z31, Z0
	VMOVUPS Z0, (DI)(BX*1)
	ADDQ $64, BX
	DECQ CX
	JNZ bvec

btail:
	KORTESTW K1, K1
	JZ bnext
	VMOVUPS.Z (DI)(BX*1), K1, Z0
	VMOVUPS.Z (R10)(BX*1), K1, Z1
	VADDPS Z1, Z0, Z0
	VMAXPS Z0, Z30, Z0
	VMINPS Z0, Z31, Z0
	VMOVUPS Z0, K1, (DI)(BX*1)

bnext:
	LEAQ (R12*4), AX
	ADDQ AX, DI
	DECQ R11
	JNZ brow
	VZEROUPPER
	RET
