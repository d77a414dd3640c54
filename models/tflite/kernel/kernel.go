// Package kernel holds the hot loops of the pure-Go TFLite interpreter: int8
// and float32 matrix multiplies with B packed ahead of time, and a fused int8
// requantizing epilogue with TFLite's fixed-point semantics.
//
// Every entry point has a plain-Go implementation that all platforms can use
// and that the tests compare the others against. On amd64 the int8 multiply
// runs in AVX-512 VNNI assembly when the CPU has it, and the float32 multiply
// in AVX2+FMA assembly. No cgo is involved.
//
// Matrices are row-major with explicit strides. B is always given as n rows of
// k values (TFLite's filter layout [out][kh][kw][in] flattened), so every call
// computes C = A·Bᵀ. Packed matrices are immutable after packing and safe for
// concurrent use; the Gemm methods may run concurrently on disjoint rows of C.
package kernel

import "fmt"

// impl names one implementation of the kernels.
type impl uint8

const (
	implGo   impl = iota // plain Go, every platform
	implAVX2             // amd64 AVX2 (+FMA for float32)
	implVNNI             // amd64 AVX-512 VNNI (int8) / AVX-512F
	implNEON             // arm64 NEON
)

func (i impl) String() string {
	switch i {
	case implGo:
		return "go"
	case implAVX2:
		return "avx2"
	case implVNNI:
		return "avx512vnni"
	case implNEON:
		return "neon"
	}
	return fmt.Sprintf("impl(%d)", uint8(i))
}

// PackedS8 holds an n×k int8 matrix B (n rows = output channels, k = depth)
// packed for the int8 kernel of this CPU. It is safe for concurrent use.
type PackedS8 struct {
	n, k    int
	impl    impl
	rowSums []int32 // Σ_k B[j][k], len n
	// b is B as given (n×k) for the Go path, or the panels of the
	// assembly path (see the pack functions).
	b   []int8
	b16 []int16 // B widened and packed for the AVX2 path
	// corr is added to every output of the assembly path to undo its
	// sign flip of A (-128·rowSums, padded to whole panels), or nil.
	corr   []int32
	kg     int     // k in groups of 4, padded (assembly path)
	chunks []chunk // the kernel calls that cover n (assembly path)
}

// PackS8 packs the n×k row-major int8 matrix b (len(b) ≥ n*k) for Gemm.
// It panics if n or k is negative or b is too short, which is a bug in the
// caller, not bad input: the interpreter checks shapes when it loads a model.
func PackS8(n, k int, b []int8) *PackedS8 {
	return packS8(bestS8, n, k, b)
}

func packS8(im impl, n, k int, b []int8) *PackedS8 {
	if n < 0 || k < 0 || len(b) < n*k {
		panic(fmt.Sprintf("kernel: PackS8: n=%d k=%d len(b)=%d", n, k, len(b)))
	}
	p := &PackedS8{n: n, k: k, impl: im, rowSums: make([]int32, n)}
	for j := 0; j < n; j++ {
		var s int32
		for _, v := range b[j*k : j*k+k] {
			s += int32(v)
		}
		p.rowSums[j] = s
	}
	switch im {
	case implGo:
		p.b = append([]int8(nil), b[:n*k]...)
	default:
		packS8Arch(p, b)
	}
	return p
}

// N is the number of rows of B (output channels).
func (p *PackedS8) N() int { return p.n }

// K is the depth: the number of columns of B.
func (p *PackedS8) K() int { return p.k }

// RowSums returns Σ_k B[j][k] for each row j of B. The slice is shared; do
// not modify it. The interpreter uses it for the input zero-point correction:
// Σ(a-za)·b = Σa·b - za·RowSums()[j].
func (p *PackedS8) RowSums() []int32 { return p.rowSums }

// Gemm computes c[i*ldc+j] = Σ_k a[i*lda+k]·B[j][k] exactly in int32 for
// i < m, j < n, overwriting c. a is m×k row-major with stride lda ≥ k.
// Concurrent calls are safe when they write disjoint rows of c.
func (p *PackedS8) Gemm(m int, a []int8, lda int, c []int32, ldc int) {
	if m <= 0 || p.n == 0 {
		return
	}
	checkArgs("Gemm", m, p.n, p.k, len(a), lda, len(c), ldc)
	if p.k == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+p.n])
		}
		return
	}
	switch p.impl {
	case implGo:
		gemmS8Go(m, p.n, p.k, a, lda, p.b, c, ldc)
	default:
		gemmS8Arch(p, m, a, lda, c, ldc)
	}
}

func checkArgs(op string, m, n, k, la, lda, lc, ldc int) {
	if lda < k || ldc < n || la < (m-1)*lda+k || lc < (m-1)*ldc+n {
		panic(fmt.Sprintf("kernel: %s: m=%d n=%d k=%d len(a)=%d lda=%d len(c)=%d ldc=%d",
			op, m, n, k, la, lda, lc, ldc))
	}
}

// PackedF32 holds an n×k float32 matrix B packed for the float32 kernel of
// this CPU. It is safe for concurrent use.
type PackedF32 struct {
	n, k   int
	impl   impl
	b      []float32
	chunks []chunk // the kernel calls that cover n (assembly path)
}

// PackF32 packs the n×k row-major float32 matrix b (len(b) ≥ n*k) for Gemm.
// Like PackS8 it panics on impossible sizes.
func PackF32(n, k int, b []float32) *PackedF32 {
	return packF32(bestF32, n, k, b)
}

func packF32(im impl, n, k int, b []float32) *PackedF32 {
	if n < 0 || k < 0 || len(b) < n*k {
		panic(fmt.Sprintf("kernel: PackF32: n=%d k=%d len(b)=%d", n, k, len(b)))
	}
	p := &PackedF32{n: n, k: k, impl: im}
	switch im {
	case implGo:
		p.b = append([]float32(nil), b[:n*k]...)
	default:
		packF32Arch(p, b)
	}
	return p
}

// N is the number of rows of B (output channels).
func (p *PackedF32) N() int { return p.n }

// K is the depth: the number of columns of B.
func (p *PackedF32) K() int { return p.k }

// Gemm computes c[i*ldc+j] = Σ_k a[i*lda+k]·B[j][k] for i < m, j < n,
// overwriting c. Concurrent calls are safe on disjoint rows of c. The sum
// order differs between implementations, so results may differ in the last
// bits.
func (p *PackedF32) Gemm(m int, a []float32, lda int, c []float32, ldc int) {
	if m <= 0 || p.n == 0 {
		return
	}
	checkArgs("Gemm", m, p.n, p.k, len(a), lda, len(c), ldc)
	if p.k == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+p.n])
		}
		return
	}
	switch p.impl {
	case implGo:
		gemmF32Go(m, p.n, p.k, a, lda, p.b, c, ldc)
	default:
		gemmF32Arch(p, m, a, lda, c, ldc)
	}
}

// Impl reports which implementation the int8 and float32 kernels use on this
// machine ("go", "avx2", "avx512vnni", "neon"), for logs and benchmarks.
func Impl() (s8, f32 string) { return bestS8.String(), bestF32.String() }
