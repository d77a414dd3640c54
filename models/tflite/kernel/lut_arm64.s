//go:build arm64 && !purego

#include "textflag.h"

// func lut8Arch(dst, src *byte, n int, table *[256]byte)
//
// The table sits in V16..V31, four quarters of 64 bytes. TBL gives zero for
// an index past its quarter, so each source byte is looked up in every
// quarter, 64 less each time (wrapping), and the four results ORed: exactly
// one quarter holds it.
TEXT ·lut8Arch(SB), NOSPLIT, $0-32
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2
	MOVD table+24(FP), R3
	VLD1.P 64(R3), [V16.B16, V17.B16, V18.B16, V19.B16]
	VLD1.P 64(R3), [V20.B16, V21.B16, V22.B16, V23.B16]
	VLD1.P 64(R3), [V24.B16, V25.B16, V26.B16, V27.B16]
	VLD1 (R3), [V28.B16, V29.B16, V30.B16, V31.B16]
	MOVD $64, R4
	VDUP R4, V15.B16
	LSR $4, R2

loop:
	VLD1.P 16(R1), [V0.B16]
	VSUB V15.B16, V0.B16, V5.B16
	VSUB V15.B16, V5.B16, V6.B16
	VSUB V15.B16, V6.B16, V7.B16
	VTBL V0.B16, [V16.B16, V17.B16, V18.B16, V19.B16], V1.B16
	VTBL V5.B16, [V20.B16, V21.B16, V22.B16, V23.B16], V2.B16
	VTBL V6.B16, [V24.B16, V25.B16, V26.B16, V27.B16], V3.B16
	VTBL V7.B16, [V28.B16, V29.B16, V30.B16, V31.B16], V4.B16
	VORR V2.B16, V1.B16, V1.B16
	VORR V4.B16, V3.B16, V3.B16
	VORR V3.B16, V1.B16, V1.B16
	VST1.P [V1.B16], 16(R0)
	SUBS $1, R2, R2
	BNE loop
	RET
