//go:build arm64 && !purego

package kernel

// Every arm64 CPU has NEON, whose TBL looks up 16 bytes in a 64-byte table.
const hasLUTArch = true

// lut8Arch looks up n bytes, n a positive multiple of 16 (lut_arm64.s).
//
//go:noescape
func lut8Arch(dst, src *byte, n int, table *[256]byte)
