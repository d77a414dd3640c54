//go:build (!amd64 && !arm64) || purego

package kernel

// Without assembly every path is the plain-Go one.
var (
	bestS8  = implGo
	bestF32 = implGo
)

// s8Impls and f32Impls list the implementations this build can run, for tests
// and benchmarks.
var (
	s8Impls  = []impl{implGo}
	f32Impls = []impl{implGo}
)

func packS8Arch(p *PackedS8, b []int8) { panic("kernel: no assembly path") }
func gemmS8Arch(p *PackedS8, m int, a []int8, lda int, c []int32, ldc int) {
	panic("kernel: no assembly path")
}
func packF32Arch(p *PackedF32, b []float32) { panic("kernel: no assembly path") }
func gemmF32Arch(p *PackedF32, m int, a []float32, lda int, c []float32, ldc int, acc bool) {
	panic("kernel: no assembly path")
}

func gemmSegsF32Arch(p *PackedF32, m int, a []float32, lda, segs, segStride int, c []float32, ldc int) {
	panic("kernel: no assembly path")
}

func gemmRequantArch(p *PackedS8, m int, a []int8, lda int, q *Requant, out []int8, ldo int) bool {
	return false
}

// Without assembly the packed matrices need nothing more.
type (
	s8Arch  struct{}
	f32Arch struct{}
)
