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
