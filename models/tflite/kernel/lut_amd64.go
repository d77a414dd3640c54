//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

var hasLUTArch = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VBMI

// lut8Arch looks up n bytes, n a positive multiple of 64 (lut_amd64.s).
//
//go:noescape
func lut8Arch(dst, src *byte, n int, table *[256]byte)
