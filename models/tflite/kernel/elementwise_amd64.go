//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

var hasPairArch = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

// lut8x2Arch looks up n pairs, n a positive multiple of 16
// (elementwise_amd64.s).
//
//go:noescape
func lut8x2Arch(dst, a, b *byte, n int, table *[PairTableLen]byte)

var hasArithArch = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ

// arithF32Arch runs n floats, n a positive multiple of 16; mode is the Arith,
// plus 4 when b is one value (elementwise_amd64.s).
//
//go:noescape
func arithF32Arch(dst, a, b *float32, n, mode int, lo, hi float32)
