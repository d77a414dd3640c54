//go:build amd64 && !purego

#include "textflag.h"

// The constants of sigmoid.go, as float32 bits.
DATA sigc<>+0(SB)/4, $0x42b0c0a5 // hi
DATA sigc<>+4(SB)/4, $0x3fb8aa3b // log2e
DATA sigc<>+8(SB)/4, $0x3f318000 // c1
DATA sigc<>+12(SB)/4, $0xb95e8083 // c2
DATA sigc<>+16(SB)/4, $0x39506967 // p0
DATA sigc<>+20(SB)/4, $0x3ab743ce // p1
DATA sigc<>+24(SB)/4, $0x3c088908 // p2
DATA sigc<>+28(SB)/4, $0x3d2aa9c1 // p3
DATA sigc<>+32(SB)/4, $0x3e2aaaaa // p4
DATA sigc<>+36(SB)/4, $0x3f000000 // p5
DATA sigc<>+40(SB)/4, $0x3f800000 // one
GLOBL sigc<>(SB), RODATA|NOPTR, $44

// func sigmoidAVX512(dst, src *float32, n, mode int)
// dst[i] = 1/(1+e^-src[i]) (mode 0), times src[i] (mode 1, SiLU), or
// e^src[i] (mode 2); n is a multiple of 16.
TEXT ·sigmoidAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ mode+24(FP), DX
	VBROADCASTSS sigc<>+0(SB), Z20  // hi
	VBROADCASTSS sigc<>+4(SB), Z21  // log2e
	VBROADCASTSS sigc<>+8(SB), Z22  // c1
	VBROADCASTSS sigc<>+12(SB), Z23 // c2
	VBROADCASTSS sigc<>+16(SB), Z24 // p0
	VBROADCASTSS sigc<>+20(SB), Z25 // p1
	VBROADCASTSS sigc<>+24(SB), Z26 // p2
	VBROADCASTSS sigc<>+28(SB), Z27 // p3
	VBROADCASTSS sigc<>+32(SB), Z28 // p4
	VBROADCASTSS sigc<>+36(SB), Z29 // p5
	VBROADCASTSS sigc<>+40(SB), Z30 // one
	VPXORD Z31, Z31, Z31
	VSUBPS Z20, Z31, Z31            // -hi
	SHRQ $4, CX
	JZ done

loop:
	VMOVUPS (SI), Z5                // x
	CMPQ DX, $2
	JEQ expin
	VXORPS X0, X0, X0
	VSUBPS Z5, Z0, Z0               // t = 0 - x
	JMP clamp

expin:
	VMOVAPS Z5, Z0                  // t = x (exp)

clamp:
	VMINPS Z20, Z0, Z0              // t = min(t, hi)
	VMAXPS Z31, Z0, Z0              // t = max(t, -hi)
	VMULPS Z21, Z0, Z1              // t·log2e
	VRNDSCALEPS $0, Z1, Z1          // n = round to nearest even
	VFNMADD231PS Z22, Z1, Z0        // r = t - n·c1
	VFNMADD231PS Z23, Z1, Z0        // r -= n·c2
	VMOVAPS Z24, Z2
	VFMADD213PS Z25, Z0, Z2         // p = p·r + p1
	VFMADD213PS Z26, Z0, Z2
	VFMADD213PS Z27, Z0, Z2
	VFMADD213PS Z28, Z0, Z2
	VFMADD213PS Z29, Z0, Z2         // ... + p5
	VMULPS Z0, Z0, Z3               // r²
	VFMADD213PS Z0, Z3, Z2          // p·r² + r
	VADDPS Z30, Z2, Z2              // + 1 = e^r
	VSCALEFPS Z1, Z2, Z2            // e^t = e^r·2^n
	CMPQ DX, $2
	JEQ store
	VADDPS Z30, Z2, Z2              // 1 + e^t
	VDIVPS Z2, Z30, Z2              // 1 / (1 + e^t)
	TESTQ DX, DX
	JZ store
	VMULPS Z5, Z2, Z2               // x·σ(x)

store:
	VMOVUPS Z2, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET
