//go:build amd64 && !purego

#include "textflag.h"

// func lut8Arch(dst, src *byte, n int, table *[256]byte)
//
// The table sits in Z16..Z19. VPERMI2B looks up the low seven bits of each
// source byte in a 128-byte pair of registers (Z16:Z17 for table[0:128],
// Z18:Z19 for table[128:256]); the top bit, moved into K1, picks which of
// the two lookups the byte takes. Two blocks of 64 bytes per step when there
// are, to keep both permute pipes busy.
TEXT ·lut8Arch(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ table+24(FP), AX
	VMOVDQU64 (AX), Z16
	VMOVDQU64 64(AX), Z17
	VMOVDQU64 128(AX), Z18
	VMOVDQU64 192(AX), Z19
	SHRQ $6, CX
	TESTQ $1, CX
	JZ pairs

	// one block first when the count is odd
	VMOVDQU8 (SI), Z0
	VPMOVB2M Z0, K1
	VMOVDQA64 Z0, Z1
	VPERMI2B Z17, Z16, Z0  // Z0 = table[0:128][x&127]
	VPERMI2B Z19, Z18, Z1  // Z1 = table[128:256][x&127]
	VPBLENDMB Z1, Z0, K1, Z0
	VMOVDQU8 Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI

pairs:
	SHRQ $1, CX
	JZ done

loop:
	VMOVDQU8 (SI), Z0
	VMOVDQU8 64(SI), Z2
	VPMOVB2M Z0, K1
	VPMOVB2M Z2, K2
	VMOVDQA64 Z0, Z1
	VMOVDQA64 Z2, Z3
	VPERMI2B Z17, Z16, Z0
	VPERMI2B Z19, Z18, Z1
	VPERMI2B Z17, Z16, Z2
	VPERMI2B Z19, Z18, Z3
	VPBLENDMB Z1, Z0, K1, Z0
	VPBLENDMB Z3, Z2, K2, Z2
	VMOVDQU8 Z0, (DI)
	VMOVDQU8 Z2, 64(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET
