//go:build arm64 && !purego

package kernel

import "golang.org/x/sys/cpu"

var hasSDOT = cpu.ARM64.HasASIMDDP

// Every arm64 CPU has NEON (ASIMD), so the float32 kernel needs no check.
var (
	bestF32  = implNEON
	bestS8   = implSMULL
	s8Impls  = []impl{implGo, implSMULL}
	f32Impls = []impl{implGo, implNEON}
)

func init() {
	if hasSDOT {
		bestS8 = implSDOT
		s8Impls = append(s8Impls, implSDOT)
	}
}

// s8Arch is what the arm64 int8 paths add to PackedS8.
type s8Arch struct {
	kg     int     // k in blocks of 16, padded
	chunks []chunk // the kernel calls that cover n
}

// f32Arch is what the arm64 float32 path adds to PackedF32.
type f32Arch struct {
	chunks []chunk // the kernel calls that cover n
}

// chunk is one 16-channel panel of the packed B, starting at element off;
// valid is how many of its channels exist (16 but for the last).
type chunk struct {
	p0, off, valid int
}

// rowBlockBytes bounds the bytes of A that one pass over all chunks reads.
const rowBlockBytes = 96 << 10

// packS8Arch packs B for the SDOT kernels: per 16-channel panel,
// [group of 4 k][16 channels][4 k], k padded with zeros to a multiple of 16.
func packS8Arch(p *PackedS8, b []int8) {
	p.chunks = p.chunks[:0] // packing again (Repack)
	if p.impl == implSMULL {
		packS8SMULL(p, b)
		return
	}
	n, k := p.n, p.k
	np := (n + 15) / 16
	k16 := (k + 15) / 16
	p.kg = k16
	stride := k16 * 16 * 16
	p.b = reuse(p.b, np*stride)
	for p0 := 0; p0 < np; p0++ {
		c := chunk{p0: p0, off: p0 * stride, valid: min(16, n-p0*16)}
		p.chunks = append(p.chunks, c)
		dst := p.b[c.off:]
		for g := 0; g < 4*k16; g++ {
			for l := 0; l < c.valid; l++ {
				j := p0*16 + l
				for t := 0; t < 4; t++ {
					if x := 4*g + t; x < k {
						dst[(g*16+l)*4+t] = b[j*k+x]
					}
				}
			}
		}
	}
}

func gemmS8Arch(p *PackedS8, m int, a []int8, lda int, c []int32, ldc int) {
	if p.impl == implSMULL {
		p.smull(m, a, lda, c, ldc)
		return
	}
	p.sdot(m, a, lda, c, nil, ldc, nil)
}

// sdot walks the register blocks of an int8 product over A's rows, writing
// c, or out through q when q is not nil.
func (p *PackedS8) sdot(m int, a []int8, lda int, c []int32, out []int8, ldc int, q *Requant) {
	need := 16 * p.kg
	safe := 0
	if cap(a) >= need {
		safe = min(m, (cap(a)-need)/lda+1)
	}
	const mr = 5
	mc := max(mr, rowBlockBytes/lda)
	for ib := 0; ib < safe; ib += mc {
		ie := min(safe, ib+mc)
		for ci := range p.chunks {
			for i := ib; i < ie; i += mr {
				p.sdotCall(i, min(mr, ie-i), &p.chunks[ci], &a[i*lda], lda, c, out, ldc, q)
			}
		}
	}
	if safe < m {
		// The last rows through a zero-padded copy.
		var buf [512]int8
		row := buf[:]
		if need > len(buf) {
			row = make([]int8, need)
		}
		row = row[:need]
		clear(row)
		for i := safe; i < m; i++ {
			copy(row, a[i*lda:i*lda+p.k])
			for ci := range p.chunks {
				p.sdotCall(i, 1, &p.chunks[ci], &row[0], need, c, out, ldc, q)
			}
		}
	}
}

// sdotCall runs the kernel for r rows from row i of chunk ch, A at ap; a
// partial last panel goes through a small buffer, for NEON has no masked
// store.
func (p *PackedS8) sdotCall(i, r int, ch *chunk, ap *int8, lda int, c []int32, out []int8, ldc int, q *Requant) {
	o := i*ldc + ch.p0*16
	if q != nil {
		qv, qc := &q.neon[ch.p0*64], &q.consts[0]
		if ch.valid == 16 {
			sdotRqCall(q.ruy, r, ap, lda, &p.b[ch.off], p.kg, &out[o], ldc, qv, qc)
			return
		}
		var tmp [5 * 16]int8
		sdotRqCall(q.ruy, r, ap, lda, &p.b[ch.off], p.kg, &tmp[0], 16, qv, qc)
		for x := 0; x < r; x++ {
			copy(out[o+x*ldc:o+x*ldc+ch.valid], tmp[x*16:])
		}
		return
	}
	if ch.valid == 16 {
		s8sdotCall(1, r, ap, lda, &p.b[ch.off], p.kg, &c[o], ldc)
		return
	}
	var tmp [5 * 16]int32
	s8sdotCall(1, r, ap, lda, &p.b[ch.off], p.kg, &tmp[0], 16)
	for x := 0; x < r; x++ {
		copy(c[o+x*ldc:o+x*ldc+ch.valid], tmp[x*16:])
	}
}

// sdotRqCall calls the requantizing SDOT kernel of the rounding mode.
func sdotRqCall(ruy bool, mr int, a *int8, lda int, b *int8, k16 int, out *int8, ldo int, qv *int32, qc *int32) {
	if ruy {
		s8sdotRqRuyCall(1, mr, a, lda, b, k16, out, ldo, qv, qc)
		return
	}
	s8sdotRqCall(1, mr, a, lda, b, k16, out, ldo, qv, qc)
}

func gemmRequantArch(p *PackedS8, m int, a []int8, lda int, q *Requant, out []int8, ldo int) bool {
	if p.impl != implSDOT {
		return false
	}
	p.sdot(m, a, lda, nil, out, ldo, q)
	return true
}

// packF32Arch packs B for the NEON float32 kernels: per 16-column panel,
// [k][16], zero padded.
func packF32Arch(p *PackedF32, b []float32) {
	n, k := p.n, p.k
	np := (n + 15) / 16
	p.b = make([]float32, np*16*k)
	for p0 := 0; p0 < np; p0++ {
		c := chunk{p0: p0, off: p0 * 16 * k, valid: min(16, n-p0*16)}
		p.chunks = append(p.chunks, c)
		dst := p.b[c.off:]
		for x := 0; x < k; x++ {
			for l := 0; l < c.valid; l++ {
				dst[x*16+l] = b[(p0*16+l)*k+x]
			}
		}
	}
}

func gemmF32Arch(p *PackedF32, m int, a []float32, lda int, c []float32, ldc int, acc bool) {
	const mr = 6
	mc := max(mr, rowBlockBytes/(4*max(lda, 1)))
	for ib := 0; ib < m; ib += mc {
		ie := min(m, ib+mc)
		for ci := range p.chunks {
			ch := &p.chunks[ci]
			for i := ib; i < ie; i += mr {
				r := min(mr, ie-i)
				if ch.valid == 16 {
					if acc {
						f32neonAccCall(1, r, &a[i*lda], lda, &p.b[ch.off], p.k, &c[i*ldc+ch.p0*16], ldc)
						continue
					}
					f32neonCall(1, r, &a[i*lda], lda, &p.b[ch.off], p.k, &c[i*ldc+ch.p0*16], ldc)
					continue
				}
				var tmp [mr * 16]float32
				if acc {
					for x := 0; x < r; x++ {
						copy(tmp[x*16:x*16+ch.valid], c[(i+x)*ldc+ch.p0*16:])
					}
					f32neonAccCall(1, r, &a[i*lda], lda, &p.b[ch.off], p.k, &tmp[0], 16)
				} else {
					f32neonCall(1, r, &a[i*lda], lda, &p.b[ch.off], p.k, &tmp[0], 16)
				}
				for x := 0; x < r; x++ {
					copy(c[(i+x)*ldc+ch.p0*16:(i+x)*ldc+ch.p0*16+ch.valid], tmp[x*16:])
				}
			}
		}
	}
}

// gemmSegsF32Arch runs GemmSegs as one NEON call per segment, the first
// from zero, the others continuing from c (per 16-column panel, B's rows of
// a segment are contiguous).
func gemmSegsF32Arch(p *PackedF32, m int, a []float32, lda, segs, segStride int, c []float32, ldc int) {
	const mr = 6
	kr := p.k / segs
	var tmp [mr * 16]float32
	for ci := range p.chunks {
		ch := &p.chunks[ci]
		for i := 0; i < m; i += mr {
			r := min(mr, m-i)
			out, ldo := &tmp[0], 16
			if ch.valid == 16 {
				out, ldo = &c[i*ldc+ch.p0*16], ldc
			}
			for q := 0; q < segs; q++ {
				ap, bp := &a[q*segStride+i*lda], &p.b[ch.off+q*kr*16]
				if q == 0 {
					f32neonCall(1, r, ap, lda, bp, kr, out, ldo)
				} else {
					f32neonAccCall(1, r, ap, lda, bp, kr, out, ldo)
				}
			}
			if ch.valid < 16 {
				for x := 0; x < r; x++ {
					copy(c[(i+x)*ldc+ch.p0*16:(i+x)*ldc+ch.p0*16+ch.valid], tmp[x*16:])
				}
			}
		}
	}
}

// packS8SMULL packs B for the SMULL kernels: per 4-channel panel,
// [16 k][4 channels][16 k], zero padded.
func packS8SMULL(p *PackedS8, b []int8) {
	n, k := p.n, p.k
	np := (n + 3) / 4
	k16 := (k + 15) / 16
	p.kg = k16
	stride := k16 * 64
	p.b = reuse(p.b, np*stride)
	for p0 := 0; p0 < np; p0++ {
		c := chunk{p0: p0, off: p0 * stride, valid: min(4, n-p0*4)}
		p.chunks = append(p.chunks, c)
		dst := p.b[c.off:]
		for blk := 0; blk < k16; blk++ {
			for l := 0; l < c.valid; l++ {
				j := p0*4 + l
				for t := 0; t < 16; t++ {
					if x := 16*blk + t; x < k {
						dst[(blk*4+l)*16+t] = b[j*k+x]
					}
				}
			}
		}
	}
}

// smull runs the SMULL kernels over A's rows.
func (p *PackedS8) smull(m int, a []int8, lda int, c []int32, ldc int) {
	need := 16 * p.kg
	safe := 0
	if cap(a) >= need {
		safe = min(m, (cap(a)-need)/lda+1)
	}
	const mr = 4
	mc := max(mr, rowBlockBytes/lda)
	for ib := 0; ib < safe; ib += mc {
		ie := min(safe, ib+mc)
		for ci := range p.chunks {
			for i := ib; i < ie; i += mr {
				p.smullCall(i, min(mr, ie-i), &p.chunks[ci], &a[i*lda], lda, c, ldc)
			}
		}
	}
	if safe < m {
		// The last rows through a zero-padded copy.
		var buf [512]int8
		row := buf[:]
		if need > len(buf) {
			row = make([]int8, need)
		}
		row = row[:need]
		clear(row)
		for i := safe; i < m; i++ {
			copy(row, a[i*lda:i*lda+p.k])
			for ci := range p.chunks {
				p.smullCall(i, 1, &p.chunks[ci], &row[0], need, c, ldc)
			}
		}
	}
}

func (p *PackedS8) smullCall(i, r int, ch *chunk, ap *int8, lda int, c []int32, ldc int) {
	o := i*ldc + ch.p0*4
	if ch.valid == 4 {
		s8smullCall(1, r, ap, lda, &p.b[ch.off], p.kg, &c[o], ldc)
		return
	}
	var tmp [4 * 4]int32
	s8smullCall(1, r, ap, lda, &p.b[ch.off], p.kg, &tmp[0], 4)
	for x := 0; x < r; x++ {
		copy(c[o+x*ldc:o+x*ldc+ch.valid], tmp[x*4:])
	}
}
