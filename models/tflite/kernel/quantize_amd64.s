//go:build amd64 && !purego

#include "textflag.h"

DATA qconst<>+0(SB)/4, $0x3f000000 // 0.5: x ± 0.5 truncated rounds half away from zero (exact below 2^22)
DATA qconst<>+4(SB)/4, $0x80000000 // sign bit
DATA qconst<>+8(SB)/4, $0xc3010000 // -129
DATA qconst<>+12(SB)/4, $0x43000000 // 128
GLOBL qconst<>(SB), RODATA|NOPTR, $16

// func minMaxArch(src *float32, n int) (lo, hi float32)
TEXT ·minMaxArch(SB), NOSPLIT, $0-24
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Z0
	VMOVAPS Z0, Z1
	ADDQ $64, SI
	SHRQ $4, CX
	DECQ CX
	JZ reduce

mmloop:
	VMOVUPS (SI), Z2
	VMINPS Z2, Z0, Z0
	VMAXPS Z2, Z1, Z1
	ADDQ $64, SI
	DECQ CX
	JNZ mmloop

reduce:
	VEXTRACTF32X8 $1, Z0, Y2
	VMINPS Y2, Y0, Y0
	VEXTRACTF32X8 $1, Z1, Y3
	VMAXPS Y3, Y1, Y1
	VEXTRACTF128 $1, Y0, X2
	VMINPS X2, X0, X0
	VEXTRACTF128 $1, Y1, X3
	VMAXPS X3, X1, X1
	VPERMILPS $0x4e, X0, X2
	VMINPS X2, X0, X0
	VPERMILPS $0x4e, X1, X3
	VMAXPS X3, X1, X1
	VPERMILPS $0xb1, X0, X2
	VMINPS X2, X0, X0
	VPERMILPS $0xb1, X1, X3
	VMAXPS X3, X1, X1
	MOVSS X0, lo+16(FP)
	MOVSS X1, hi+20(FP)
	VZEROUPPER
	RET

// func quantizeArch(dst *int8, src *float32, n int, inv, zp float32)
TEXT ·quantizeArch(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS inv+24(FP), Z10
	VBROADCASTSS zp+28(FP), Z11
	VBROADCASTSS qconst<>+0(SB), Z12
	VBROADCASTSS qconst<>+4(SB), Z13
	VBROADCASTSS qconst<>+8(SB), Z14
	VBROADCASTSS qconst<>+12(SB), Z15
	SHRQ $4, CX

qloop:
	VMOVUPS (SI), Z0
	VMULPS Z10, Z0, Z0         // v·inv
	VADDPS Z11, Z0, Z0         // zp + v·inv (float32, as TFLite)
	VMAXPS Z14, Z0, Z0         // keep within int32 for the conversion
	VMINPS Z15, Z0, Z0
	VPANDD Z13, Z0, Z1         // sign of x
	VPORD Z12, Z1, Z1          // ±0.5
	VADDPS Z1, Z0, Z0
	VCVTTPS2DQ Z0, Z0          // truncate: round half away from zero
	VPMOVSDB Z0, X0            // saturate to int8
	VMOVDQU X0, (DI)
	ADDQ $64, SI
	ADDQ $16, DI
	DECQ CX
	JNZ qloop
	VZEROUPPER
	RET
