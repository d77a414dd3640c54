//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

var hasQuantizeArch = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

// minMaxArch and quantizeArch work on n floats, n a positive multiple of 16
// (quantize_amd64.s).
//
//go:noescape
func minMaxArch(src *float32, n int) (lo, hi float32)

//go:noescape
func quantizeArch(dst *int8, src *float32, n int, inv, zp float32)
