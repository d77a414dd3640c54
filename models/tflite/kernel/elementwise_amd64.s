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

// SRDHM sets v to SaturatingRoundingDoublingHighMul(v, m) per dword, m a
// broadcast multiplier other than MinInt32: with the 64-bit product ab, the
// C++ nudge-and-truncate is floor((ab + 2^30) / 2^31) for either sign.
// Even dwords: the product's bits 31..62 shifted down to the low dword; odd
// ones: shifted up to the high dword; K7 (0xAAAA) picks the odd ones.
// Z29 holds 2^30 in every qword.
#define SRDHM(v, m, t1, t2) \
	VPMULDQ m, v, t1 \
	VPSRLQ $32, v, t2 \
	VPMULDQ m, t2, t2 \
	VPADDQ Z29, t1, t1 \
	VPADDQ Z29, t2, t2 \
	VPSRLQ $31, t1, t1 \
	VPSLLQ $1, t2, t2 \
	VPBLENDMD t2, t1, K7, v

// RDBPOT sets v to RoundingDivideByPOT(v, r) per dword, with mask = 1<<r - 1
// and half = mask>>1 broadcast: v>>r, plus one where the remainder is above
// half (half + 1 for negative v). Z30 holds -1 in every dword.
#define RDBPOT(v, r, mask, half, t1, t2) \
	VPANDD mask, v, t1 \
	VPSRLD $31, v, t2 \
	VPADDD half, t2, t2 \
	VPCMPGTD t2, t1, K1 \
	VPSRAVD r, v, v \
	VPSUBD Z30, v, K1, v

// ADDQ8ONE does 16 pairs at offset off.
#define ADDQ8ONE(off) \
	VPMOVSXBD off(SI), Z0 \
	VPMOVSXBD off(DX), Z1 \
	VPSUBD Z8, Z0, Z0 \
	VPSUBD Z9, Z1, Z1 \
	VPSLLVD Z10, Z0, Z0 \
	VPSLLVD Z11, Z1, Z1 \
	SRDHM(Z0, Z12, Z2, Z3) \
	SRDHM(Z1, Z13, Z4, Z5) \
	RDBPOT(Z0, Z14, Z16, Z18, Z2, Z3) \
	RDBPOT(Z1, Z15, Z17, Z19, Z4, Z5) \
	VPXORD Z28, Z1, Z1 \
	VPSUBD Z28, Z1, Z1 \
	VPADDD Z1, Z0, Z0 \
	VPSLLVD Z20, Z0, Z0 \
	SRDHM(Z0, Z21, Z2, Z3) \
	RDBPOT(Z0, Z22, Z23, Z24, Z2, Z3) \
	VPADDD Z25, Z0, Z0 \
	VPMAXSD Z26, Z0, Z0 \
	VPMINSD Z27, Z0, Z0 \
	VPMOVDB Z0, off(DI)

// ADDQ8TWO does 32 pairs, the two halves interleaved.
#define ADDQ8TWO \
	VPMOVSXBD (SI), Z0 \
	VPMOVSXBD (DX), Z1 \
	VPMOVSXBD 16(SI), Z6 \
	VPMOVSXBD 16(DX), Z7 \
	VPSUBD Z8, Z0, Z0 \
	VPSUBD Z9, Z1, Z1 \
	VPSUBD Z8, Z6, Z6 \
	VPSUBD Z9, Z7, Z7 \
	VPSLLVD Z10, Z0, Z0 \
	VPSLLVD Z11, Z1, Z1 \
	VPSLLVD Z10, Z6, Z6 \
	VPSLLVD Z11, Z7, Z7 \
	SRDHM(Z0, Z12, Z2, Z3) \
	SRDHM(Z1, Z13, Z4, Z5) \
	SRDHM(Z6, Z12, Z31, Z3) \
	SRDHM(Z7, Z13, Z4, Z5) \
	RDBPOT(Z0, Z14, Z16, Z18, Z2, Z3) \
	RDBPOT(Z1, Z15, Z17, Z19, Z4, Z5) \
	RDBPOT(Z6, Z14, Z16, Z18, Z2, Z3) \
	RDBPOT(Z7, Z15, Z17, Z19, Z4, Z5) \
	VPXORD Z28, Z1, Z1 \
	VPXORD Z28, Z7, Z7 \
	VPSUBD Z28, Z1, Z1 \
	VPSUBD Z28, Z7, Z7 \
	VPADDD Z1, Z0, Z0 \
	VPADDD Z7, Z6, Z6 \
	VPSLLVD Z20, Z0, Z0 \
	VPSLLVD Z20, Z6, Z6 \
	SRDHM(Z0, Z21, Z2, Z3) \
	SRDHM(Z6, Z21, Z4, Z5) \
	RDBPOT(Z0, Z22, Z23, Z24, Z2, Z3) \
	RDBPOT(Z6, Z22, Z23, Z24, Z4, Z5) \
	VPADDD Z25, Z0, Z0 \
	VPADDD Z25, Z6, Z6 \
	VPMAXSD Z26, Z0, Z0 \
	VPMAXSD Z26, Z6, Z6 \
	VPMINSD Z27, Z0, Z0 \
	VPMINSD Z27, Z6, Z6 \
	VPMOVDB Z0, (DI) \
	VPMOVDB Z6, 16(DI)

// func addQ8Arch(dst, a, b *byte, n int, p *addQ8Params)
TEXT ·addQ8Arch(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ p+32(FP), AX
	VPBROADCASTD 0(AX), Z8   // z1
	VPBROADCASTD 4(AX), Z9   // z2
	VPBROADCASTD 8(AX), Z10  // l1
	VPBROADCASTD 12(AX), Z11 // l2
	VPBROADCASTD 16(AX), Z12 // m1
	VPBROADCASTD 20(AX), Z13 // m2
	VPBROADCASTD 24(AX), Z14 // r1
	VPBROADCASTD 28(AX), Z15 // r2
	VPBROADCASTD 32(AX), Z16 // mask1
	VPBROADCASTD 36(AX), Z17 // mask2
	VPBROADCASTD 40(AX), Z18 // half1
	VPBROADCASTD 44(AX), Z19 // half2
	VPBROADCASTD 48(AX), Z20 // output left shift
	VPBROADCASTD 52(AX), Z21 // mo
	VPBROADCASTD 56(AX), Z22 // ro
	VPBROADCASTD 60(AX), Z23 // masko
	VPBROADCASTD 64(AX), Z24 // halfo
	VPBROADCASTD 68(AX), Z25 // zo
	VPBROADCASTD 72(AX), Z26 // min
	VPBROADCASTD 76(AX), Z27 // max
	VPBROADCASTD 80(AX), Z28 // neg
	MOVQ $0x40000000, BX
	VPBROADCASTQ BX, Z29
	VPTERNLOGD $0xff, Z30, Z30, Z30
	MOVQ $0xaaaa, BX
	KMOVW BX, K7
	SHRQ $4, CX

	TESTQ $1, CX
	JZ addq8pairs
	ADDQ8ONE(0)
	ADDQ $16, SI
	ADDQ $16, DX
	ADDQ $16, DI

addq8pairs:
	SHRQ $1, CX
	JZ addq8done

addq8loop:
	ADDQ8TWO
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ addq8loop

addq8done:
	VZEROUPPER
	RET
