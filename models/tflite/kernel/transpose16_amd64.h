// Shared by the softmax and transpose assembly: a 16×16 byte transpose in
// four AVX-512 registers with VPERMI2B (AVX512_VBMI), and LOAD4 to gather
// its rows.

// tp16: VPERMI2B indices of a 16×16 byte transpose held in four registers
// (rows 4k..4k+3 in register k): byte q = 16c+r of output register k is
// element [r][4k+c], at byte 16·(r%4) + 4k + c of input register r/4,
// taken from the pair (0, 1) for r < 8 and (2, 3) for r ≥ 8 (so bit 6
// picks the pair's second register). The transpose is its own inverse.
DATA tp16<>+0(SB)/8, $0x7060504030201000
DATA tp16<>+8(SB)/8, $0x7060504030201000
DATA tp16<>+16(SB)/8, $0x7161514131211101
DATA tp16<>+24(SB)/8, $0x7161514131211101
DATA tp16<>+32(SB)/8, $0x7262524232221202
DATA tp16<>+40(SB)/8, $0x7262524232221202
DATA tp16<>+48(SB)/8, $0x7363534333231303
DATA tp16<>+56(SB)/8, $0x7363534333231303
DATA tp16<>+64(SB)/8, $0x7464544434241404
DATA tp16<>+72(SB)/8, $0x7464544434241404
DATA tp16<>+80(SB)/8, $0x7565554535251505
DATA tp16<>+88(SB)/8, $0x7565554535251505
DATA tp16<>+96(SB)/8, $0x7666564636261606
DATA tp16<>+104(SB)/8, $0x7666564636261606
DATA tp16<>+112(SB)/8, $0x7767574737271707
DATA tp16<>+120(SB)/8, $0x7767574737271707
DATA tp16<>+128(SB)/8, $0x7868584838281808
DATA tp16<>+136(SB)/8, $0x7868584838281808
DATA tp16<>+144(SB)/8, $0x7969594939291909
DATA tp16<>+152(SB)/8, $0x7969594939291909
DATA tp16<>+160(SB)/8, $0x7a6a5a4a3a2a1a0a
DATA tp16<>+168(SB)/8, $0x7a6a5a4a3a2a1a0a
DATA tp16<>+176(SB)/8, $0x7b6b5b4b3b2b1b0b
DATA tp16<>+184(SB)/8, $0x7b6b5b4b3b2b1b0b
DATA tp16<>+192(SB)/8, $0x7c6c5c4c3c2c1c0c
DATA tp16<>+200(SB)/8, $0x7c6c5c4c3c2c1c0c
DATA tp16<>+208(SB)/8, $0x7d6d5d4d3d2d1d0d
DATA tp16<>+216(SB)/8, $0x7d6d5d4d3d2d1d0d
DATA tp16<>+224(SB)/8, $0x7e6e5e4e3e2e1e0e
DATA tp16<>+232(SB)/8, $0x7e6e5e4e3e2e1e0e
DATA tp16<>+240(SB)/8, $0x7f6f5f4f3f2f1f0f
DATA tp16<>+248(SB)/8, $0x7f6f5f4f3f2f1f0f
GLOBL tp16<>(SB), RODATA|NOPTR, $256

// tp16mask: K4 for TRANSPOSE16, the bytes of rows 8..15 of each register.
DATA tp16mask<>+0(SB)/8, $0xff00ff00ff00ff00
GLOBL tp16mask<>(SB), RODATA|NOPTR, $8

// TRANSPOSE16 sets o0..o3 to the transpose of the 16×16 bytes in i0..i3
// (Z0, Z1 scratch; K4 the mask of rows 8..15).
#define TRANSPOSE16(i0, i1, i2, i3, o0, o1, o2, o3) \
	TP16ONE(i0, i1, i2, i3, 0, o0) \
	TP16ONE(i0, i1, i2, i3, 64, o1) \
	TP16ONE(i0, i1, i2, i3, 128, o2) \
	TP16ONE(i0, i1, i2, i3, 192, o3)

#define TP16ONE(i0, i1, i2, i3, off, o) \
	VMOVDQU64 tp16<>+off(SB), Z0 \
	VMOVDQA64 Z0, Z1 \
	VPERMI2B  i1, i0, Z0 \
	VPERMI2B  i3, i2, Z1 \
	VPBLENDMB Z1, Z0, K4, o

// LOAD4 loads four 16-byte rows from R14, R14+cols, +2·cols, +3·cols into
// Z and steps R14 by 4·cols (R12 = cols, R13 = 3·cols).
#define LOAD4(X, Z) \
	VMOVDQU (R14), X \
	VINSERTI32X4 $1, (R14)(R12*1), Z, Z \
	VINSERTI32X4 $2, (R14)(R12*2), Z, Z \
	VINSERTI32X4 $3, (R14)(R13*1), Z, Z \
	LEAQ (R14)(R12*4), R14
