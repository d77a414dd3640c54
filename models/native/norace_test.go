//go:build !race && linux && (amd64 || arm64) && !omit_native

package native

const raceEnabled = false
