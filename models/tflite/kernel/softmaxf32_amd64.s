//go:build amd64 && !purego

#include "textflag.h"

DATA smf<>+0(SB)/4, $0xff800000 // -Inf
DATA smf<>+4(SB)/4, $0x7fc00000 // NaN
DATA smf<>+8(SB)/8, $0x3ff0000000000000 // 1.0 (float64)
GLOBL smf<>(SB), RODATA|NOPTR, $16

DATA smfiota<>+0(SB)/4, $0
DATA smfiota<>+4(SB)/4, $1
DATA smfiota<>+8(SB)/4, $2
DATA smfiota<>+12(SB)/4, $3
DATA smfiota<>+16(SB)/4, $4
DATA smfiota<>+20(SB)/4, $5
DATA smfiota<>+24(SB)/4, $6
DATA smfiota<>+28(SB)/4, $7
DATA smfiota<>+32(SB)/4, $8
DATA smfiota<>+36(SB)/4, $9
DATA smfiota<>+40(SB)/4, $10
DATA smfiota<>+44(SB)/4, $11
DATA smfiota<>+48(SB)/4, $12
DATA smfiota<>+52(SB)/4, $13
DATA smfiota<>+56(SB)/4, $14
DATA smfiota<>+60(SB)/4, $15
GLOBL smfiota<>(SB), RODATA|NOPTR, $64

// TAILMASK16 sets K2 to the low CX bits (CX < 16), AX scratch.
#define TAILMASK16 \
	MOVQ $1, AX \
	SHLQ CX, AX \
	DECQ AX \
	KMOVW AX, K2

// func softmaxF32PrepAVX512(dst, src *float32, rows, d int, beta float32)
// Each row: m = its maximum (VMAXPS, a masked tail merged into -Inf; NaN
// if the row has one, as Go's max gives), then dst = (src - m)·beta.
TEXT ·softmaxF32PrepAVX512(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), BX
	MOVQ d+24(FP), DX
	VBROADCASTSS beta+32(FP), Z30
	VBROADCASTSS smf<>+0(SB), Z29   // -Inf
	TESTQ BX, BX
	JZ prepdone

preprow:
	VMOVAPS Z29, Z0
	KXORW K4, K4, K4                // NaNs seen
	MOVQ SI, R13
	MOVQ DX, CX

prepmax:
	CMPQ CX, $16
	JLT prepmaxtail
	VMOVUPS (R13), Z1
	VCMPPS $3, Z1, Z1, K3
	KORW K3, K4, K4
	VMAXPS Z1, Z0, Z0
	ADDQ $64, R13
	SUBQ $16, CX
	JMP prepmax

prepmaxtail:
	TESTQ CX, CX
	JZ prepred
	TAILMASK16
	VMOVAPS Z29, Z1
	VMOVUPS (R13), K2, Z1
	VCMPPS $3, Z1, Z1, K3
	KORW K3, K4, K4
	VMAXPS Z1, Z0, Z0

prepred:
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VBROADCASTSS X0, Z2             // m
	KORTESTW K4, K4
	JZ prepnonan
	VBROADCASTSS smf<>+4(SB), Z2    // a NaN: m is NaN

prepnonan:
	MOVQ SI, R13
	MOVQ DI, R14
	MOVQ DX, CX

prepsub:
	CMPQ CX, $16
	JLT prepsubtail
	VMOVUPS (R13), Z1
	VSUBPS Z2, Z1, Z1
	VMULPS Z30, Z1, Z1
	VMOVUPS Z1, (R14)
	ADDQ $64, R13
	ADDQ $64, R14
	SUBQ $16, CX
	JMP prepsub

prepsubtail:
	TESTQ CX, CX
	JZ prepnext
	TAILMASK16
	VMOVUPS.Z (R13), K2, Z1
	VSUBPS Z2, Z1, Z1
	VMULPS Z30, Z1, Z1
	VMOVUPS Z1, K2, (R14)

prepnext:
	LEAQ (SI)(DX*4), SI
	LEAQ (DI)(DX*4), DI
	DECQ BX
	JNZ preprow

prepdone:
	VZEROUPPER
	RET

// func softmaxF32NormAVX512(y *float32, blocks, d int)
// Blocks of 16 rows: the rows' float64 sums a row per lane (eight in Z2,
// eight in Z3), column by column as gathers, so each row adds in order;
// inv = float32(1/sum) to the frame; then each row times its inv.
TEXT ·softmaxF32NormAVX512(SB), NOSPLIT, $64-24
	MOVQ y+0(FP), SI
	MOVQ blocks+8(FP), BX
	MOVQ d+16(FP), DX
	VPBROADCASTD d+16(FP), Z31
	VPMULLD smfiota<>(SB), Z31, Z31 // row r's first element, lane r
	VBROADCASTSD smf<>+8(SB), Z28   // 1.0
	TESTQ BX, BX
	JZ normdone

normblock:
	VXORPD Z2, Z2, Z2
	VXORPD Z3, Z3, Z3
	MOVQ SI, R13
	MOVQ DX, CX

normsum:
	KXNORW K1, K1, K1
	VXORPS Z0, Z0, Z0
	VGATHERDPS (R13)(Z31*4), K1, Z0
	VCVTPS2PD Y0, Z4
	VEXTRACTF64X4 $1, Z0, Y1
	VCVTPS2PD Y1, Z5
	VADDPD Z4, Z2, Z2
	VADDPD Z5, Z3, Z3
	ADDQ $4, R13
	DECQ CX
	JNZ normsum

	VDIVPD Z2, Z28, Z2
	VDIVPD Z3, Z28, Z3
	VCVTPD2PS Z2, Y2
	VCVTPD2PS Z3, Y3
	VINSERTF64X4 $1, Y3, Z2, Z2
	VMOVUPS Z2, 0(SP)               // inv of rows 0..15
	XORQ R11, R11
	MOVQ SI, R13

normrow:
	VBROADCASTSS 0(SP)(R11*4), Z6
	MOVQ DX, CX

normmul:
	CMPQ CX, $16
	JLT normtail
	VMULPS (R13), Z6, Z1
	VMOVUPS Z1, (R13)
	ADDQ $64, R13
	SUBQ $16, CX
	JMP normmul

normtail:
	TESTQ CX, CX
	JZ normnext
	TAILMASK16
	VMOVUPS.Z (R13), K2, Z1
	VMULPS Z6, Z1, Z1
	VMOVUPS Z1, K2, (R13)
	LEAQ (R13)(CX*4), R13

normnext:
	INCQ R11
	CMPQ R11, $16
	JLT normrow

	MOVQ R13, SI
	DECQ BX
	JNZ normblock

normdone:
	VZEROUPPER
	RET
