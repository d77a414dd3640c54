//go:build amd64 && !purego

#include "textflag.h"

// func lut8x2Arch(dst, a, b *byte, n int, table *[PairTableLen]byte)
//
// Per 16 pairs: widen a and b to dwords, index = a<<8 | b, gather the four
// bytes at each index (the low one is the result; the table's padding keeps
// the last reads inside it) and narrow back to bytes. Two blocks per step
// when there are, so two gathers are in flight.
TEXT ·lut8x2Arch(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ table+32(FP), AX
	SHRQ $4, CX
	TESTQ $1, CX
	JZ pairs

	VPMOVZXBD (SI), Z0
	VPMOVZXBD (DX), Z1
	VPSLLD $8, Z0, Z0
	VPORD Z1, Z0, Z0
	KXNORW K0, K0, K1
	VPGATHERDD (AX)(Z0*1), K1, Z2
	VPMOVDB Z2, (DI)
	ADDQ $16, SI
	ADDQ $16, DX
	ADDQ $16, DI

pairs:
	SHRQ $1, CX
	JZ done

loop:
	VPMOVZXBD (SI), Z0
	VPMOVZXBD (DX), Z1
	VPMOVZXBD 16(SI), Z3
	VPMOVZXBD 16(DX), Z4
	VPSLLD $8, Z0, Z0
	VPSLLD $8, Z3, Z3
	VPORD Z1, Z0, Z0
	VPORD Z4, Z3, Z3
	KXNORW K0, K0, K1
	KXNORW K0, K0, K2
	VPGATHERDD (AX)(Z0*1), K1, Z2
	VPGATHERDD (AX)(Z3*1), K2, Z5
	VPMOVDB Z2, (DI)
	VPMOVDB Z5, 16(DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET

// ARITH is one loop of arithF32Arch: OP combines Z0 (a) and Z1 (b) into Z0;
// LOADB loads b into Z1 (nothing when b is one value, already in Z1). The
// clamp is VRANGEPS: max (imm 5) then min (imm 4), the sign taken from the
// comparison, so -0 < +0 as in Go's max and min; VRANGEPS drops a NaN for
// the other operand, so NaNs (K1, unordered) are put back after it.
#define ARITH(name, LOADB, OP) \
name: \
	VMOVUPS (SI), Z0 \
	LOADB \
	OP \
	VCMPPS $3, Z0, Z0, K1 \
	VRANGEPS $5, Z0, Z2, Z4 \
	VRANGEPS $4, Z4, Z3, Z4 \
	VMOVAPS Z0, K1, Z4 \
	VMOVUPS Z4, (DI) \
	ADDQ $64, SI \
	ADDQ BX, DX \
	ADDQ $64, DI \
	DECQ CX \
	JNZ name \
	JMP arithdone

// func arithF32Arch(dst, a, b *float32, n, mode int, lo, hi float32)
TEXT ·arithF32Arch(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ mode+32(FP), AX
	VBROADCASTSS lo+40(FP), Z2
	VBROADCASTSS hi+44(FP), Z3
	SHRQ $4, CX
	MOVQ $64, BX
	TESTQ $4, AX
	JZ vector
	VBROADCASTSS (DX), Z1
	XORQ BX, BX
	ANDQ $3, AX
	CMPQ AX, $0
	JEQ sadd
	CMPQ AX, $1
	JEQ ssub
	CMPQ AX, $2
	JEQ smul
	JMP ssubfrom

vector:
	CMPQ AX, $0
	JEQ vadd
	CMPQ AX, $1
	JEQ vsub
	CMPQ AX, $2
	JEQ vmul
	JMP vsubfrom

#define LOADV VMOVUPS (DX), Z1
#define LOADS
#define OPADD VADDPS Z1, Z0, Z0
#define OPSUB VSUBPS Z1, Z0, Z0
#define OPMUL VMULPS Z1, Z0, Z0
#define OPSUBFROM VSUBPS Z0, Z1, Z0

	ARITH(vadd, LOADV, OPADD)
	ARITH(vsub, LOADV, OPSUB)
	ARITH(vmul, LOADV, OPMUL)
	ARITH(vsubfrom, LOADV, OPSUBFROM)
	ARITH(sadd, LOADS, OPADD)
	ARITH(ssub, LOADS, OPSUB)
	ARITH(smul, LOADS, OPMUL)
	ARITH(ssubfrom, LOADS, OPSUBFROM)

arithdone:
	VZEROUPPER
	RET
