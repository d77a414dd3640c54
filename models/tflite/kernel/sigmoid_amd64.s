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

// The steps of one 16-float vector, as macros so the main loop can run four
// vectors at once (four independent dependency chains in flight) and the
// remainder loop one: every element gets the same instructions either way.
// Registers: x the input, t the argument then r, n the power of two, p the
// polynomial then the result, r2 r².

// NEGX sets t = 0 - x (sigmoid, SiLU); EXPX sets t = x (exp).
#define NEGX(x, t) VPXORD t, t, t; VSUBPS x, t, t
#define EXPX(x, t) VMOVAPS x, t

// EXPT sets p = e^t for t clamped to ±hi (Cephes expf).
#define EXPT(t, n, p, r2) \
	VMINPS Z20, t, t; \
	VMAXPS Z31, t, t; \
	VMULPS Z21, t, n; \
	VRNDSCALEPS $0, n, n; \
	VFNMADD231PS Z22, n, t; \
	VFNMADD231PS Z23, n, t; \
	VMOVAPS Z24, p; \
	VFMADD213PS Z25, t, p; \
	VFMADD213PS Z26, t, p; \
	VFMADD213PS Z27, t, p; \
	VFMADD213PS Z28, t, p; \
	VFMADD213PS Z29, t, p; \
	VMULPS t, t, r2; \
	VFMADD213PS t, r2, p; \
	VADDPS Z30, p, p; \
	VSCALEFPS n, p, p

// RECIP sets p = 1 / (1 + p).
#define RECIP(p) VADDPS Z30, p, p; VDIVPS p, Z30, p

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
	SHRQ $4, CX                     // vectors
	CMPQ CX, $4
	JLT loop1

	// Four vectors per iteration: (x, t, n, p, r2) in (Z5, Z0, Z1, Z2, Z3),
	// (Z10, Z6, Z7, Z8, Z9), (Z15, Z11, Z12, Z13, Z14), (Z4, Z16, Z17, Z18, Z19).
loop4:
	VMOVUPS (SI), Z5
	VMOVUPS 64(SI), Z10
	VMOVUPS 128(SI), Z15
	VMOVUPS 192(SI), Z4
	CMPQ DX, $2
	JEQ exp4
	NEGX(Z5, Z0)
	NEGX(Z10, Z6)
	NEGX(Z15, Z11)
	NEGX(Z4, Z16)
	JMP core4

exp4:
	EXPX(Z5, Z0)
	EXPX(Z10, Z6)
	EXPX(Z15, Z11)
	EXPX(Z4, Z16)

core4:
	EXPT(Z0, Z1, Z2, Z3)
	EXPT(Z6, Z7, Z8, Z9)
	EXPT(Z11, Z12, Z13, Z14)
	EXPT(Z16, Z17, Z18, Z19)
	CMPQ DX, $2
	JEQ store4
	RECIP(Z2)
	RECIP(Z8)
	RECIP(Z13)
	RECIP(Z18)
	TESTQ DX, DX
	JZ store4
	VMULPS Z5, Z2, Z2               // x·σ(x)
	VMULPS Z10, Z8, Z8
	VMULPS Z15, Z13, Z13
	VMULPS Z4, Z18, Z18

store4:
	VMOVUPS Z2, (DI)
	VMOVUPS Z8, 64(DI)
	VMOVUPS Z13, 128(DI)
	VMOVUPS Z18, 192(DI)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JGE loop4

loop1:
	TESTQ CX, CX
	JZ done
	VMOVUPS (SI), Z5
	CMPQ DX, $2
	JEQ exp1
	NEGX(Z5, Z0)
	JMP core1

exp1:
	EXPX(Z5, Z0)

core1:
	EXPT(Z0, Z1, Z2, Z3)
	CMPQ DX, $2
	JEQ store1
	RECIP(Z2)
	TESTQ DX, DX
	JZ store1
	VMULPS Z5, Z2, Z2

store1:
	VMOVUPS Z2, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JMP loop1

done:
	VZEROUPPER
	RET
