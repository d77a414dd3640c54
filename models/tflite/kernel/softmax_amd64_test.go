//go:build amd64 && !purego

package kernel

import "testing"

// TestSoftmaxInt8NoVBMI runs TestSoftmaxInt8 again on the AVX-512 paths
// for CPUs without VBMI (gathers of each column's bytes instead of
// in-register transposes).
func TestSoftmaxInt8NoVBMI(t *testing.T) {
	if !hasVBMI {
		t.Skip("the paths without VBMI are the ones TestSoftmaxInt8 ran")
	}
	hasVBMI = false
	defer func() { hasVBMI = true }()
	TestSoftmaxInt8(t)
}
