//go:build (!amd64 && !arm64) || purego

package kernel

const hasLUTArch = false

func lut8Arch(dst, src *byte, n int, table *[256]byte) { panic("kernel: no assembly table lookup") }
