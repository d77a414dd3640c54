//go:build amd64 && !purego

#include "textflag.h"

// tailMask sets K1 to the low CX bits (CX < 64), with AX as scratch.
#define TAILMASK \
	MOVQ $1, AX \
	SHLQ CX, AX \
	DECQ AX \
	KMOVQ AX, K1

// func maxI8AVX512(dst, src *int8, n int)
// dst[i] = max(dst[i], src[i]) for i < n (n > 0).
TEXT ·maxI8AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

mi8loop:
	CMPQ CX, $64
	JLT  mi8tail
	VMOVDQU8 (SI), Z0
	VPMAXSB  (DI), Z0, Z0
	VMOVDQU8 Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $64, CX
	JMP  mi8loop

mi8tail:
	TESTQ CX, CX
	JZ    mi8done
	TAILMASK
	VMOVDQU8.Z (SI), K1, Z0
	VMOVDQU8.Z (DI), K1, Z1
	VPMAXSB    Z1, Z0, Z0
	VMOVDQU8   Z0, K1, (DI)

mi8done:
	VZEROUPPER
	RET

// func maxF32AVX512(dst, src *float32, n int)
// dst[i] = src[i] where src[i] > dst[i] (VMAXPS returns its second source
// unless the first is greater: a NaN on either side keeps dst[i]).
TEXT ·maxF32AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

mf32loop:
	CMPQ CX, $16
	JLT  mf32tail
	VMOVUPS (SI), Z0
	VMOVUPS (DI), Z1
	VMAXPS  Z1, Z0, Z0  // src > dst ? src : dst
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  mf32loop

mf32tail:
	TESTQ CX, CX
	JZ    mf32done
	TAILMASK
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z (DI), K1, Z1
	VMAXPS    Z1, Z0, Z0
	VMOVUPS   Z0, K1, (DI)

mf32done:
	VZEROUPPER
	RET

// func clampI8AVX512(x *int8, n int, lo, hi int8)
TEXT ·clampI8AVX512(SB), NOSPLIT, $0-18
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VPBROADCASTB lo+16(FP), Z2
	VPBROADCASTB hi+17(FP), Z3

ci8loop:
	CMPQ CX, $64
	JLT  ci8tail
	VMOVDQU8 (DI), Z0
	VPMAXSB  Z2, Z0, Z0
	VPMINSB  Z3, Z0, Z0
	VMOVDQU8 Z0, (DI)
	ADDQ $64, DI
	SUBQ $64, CX
	JMP  ci8loop

ci8tail:
	TESTQ CX, CX
	JZ    ci8done
	TAILMASK
	VMOVDQU8.Z (DI), K1, Z0
	VPMAXSB    Z2, Z0, Z0
	VPMINSB    Z3, Z0, Z0
	VMOVDQU8   Z0, K1, (DI)

ci8done:
	VZEROUPPER
	RET

// func clampF32AVX512(x *float32, n int, lo, hi float32)
// x[i] = min(max(x[i], lo), hi) as Go computes it for lo ≠ 0: a NaN x[i]
// stays (restored under the unordered mask K2).
TEXT ·clampF32AVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS lo+16(FP), Z2
	VBROADCASTSS hi+20(FP), Z3

cf32loop:
	CMPQ CX, $16
	JLT  cf32tail
	VMOVUPS  (DI), Z0
	VMAXPS   Z2, Z0, Z1      // x > lo ? x : lo
	VMINPS   Z3, Z1, Z1      // < hi ? : hi
	VCMPPS   $3, Z0, Z0, K2  // unordered: NaN
	VMOVAPS  Z0, K2, Z1
	VMOVUPS  Z1, (DI)
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  cf32loop

cf32tail:
	TESTQ CX, CX
	JZ    cf32done
	TAILMASK
	VMOVUPS.Z (DI), K1, Z0
	VMAXPS    Z2, Z0, Z1
	VMINPS    Z3, Z1, Z1
	VCMPPS    $3, Z0, Z0, K2
	VMOVAPS   Z0, K2, Z1
	VMOVUPS   Z1, K1, (DI)

cf32done:
	VZEROUPPER
	RET
