//go:build amd64 && !purego

package kernel

import (
	"sync"

	"golang.org/x/sys/cpu"
)

//go:generate go run asm_gen.go

var (
	hasVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI
	hasAVX2 = cpu.X86.HasAVX2
	hasFMA  = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)

var (
	bestS8   = implGo
	bestF32  = implGo
	s8Impls  = []impl{implGo}
	f32Impls = []impl{implGo}
)

func init() {
	if hasAVX2 {
		bestS8 = implAVX2
		s8Impls = append(s8Impls, implAVX2)
	}
	if hasVNNI {
		bestS8 = implVNNI
		s8Impls = append(s8Impls, implVNNI)
	}
	if hasFMA {
		bestF32 = implAVX2
		f32Impls = append(f32Impls, implAVX2)
	}
}

// s8Arch is what the amd64 int8 paths add to PackedS8.
type s8Arch struct {
	kg     int     // k in groups of 4 (VNNI) or 2 (AVX2), padded
	chunks []chunk // the kernel calls that cover n
	b16    []int16 // B widened and packed for the AVX2 path
	// corr is added to every output of the VNNI path to undo its sign flip
	// of A: -128·rowSums, padded to whole panels.
	corr []int32
}

// f32Arch is what the amd64 float32 path adds to PackedF32.
type f32Arch struct {
	chunks []chunk // the kernel calls that cover n
}

// chunk is a run of nv panels (16 int8 channels or 8 floats each) that one
// kernel call covers, starting at panel p0 and at element off of the packed B.
type chunk struct {
	nv, p0, off int
	mask        uint64 // valid channels of the chunk's last panel (int8)
}

// rowBlockBytes bounds the bytes of A that one pass over all chunks reads,
// so that A stays in L2 while B's chunks take turns.
const rowBlockBytes = 192 << 10

func packS8Arch(p *PackedS8, b []int8) {
	p.chunks = p.chunks[:0] // packing again (Repack)
	if p.impl == implAVX2 {
		packS8AVX2(p, b)
		return
	}
	n, k := p.n, p.k
	np := (n + 15) / 16
	kg := (k + 3) / 4
	p.kg = kg
	p.corr = reuse(p.corr, np*16)
	for j := 0; j < n; j++ {
		p.corr[j] = -128 * p.rowSums[j]
	}
	p.b = reuse(p.b, np*16*kg*4)
	for p0 := 0; p0 < np; {
		nv := min(4, np-p0)
		c := chunk{nv: nv, p0: p0, off: p0 * 16 * kg * 4, mask: 0xffff}
		if last := n - (p0+nv-1)*16; last < 16 {
			c.mask = 1<<last - 1
		}
		p.chunks = append(p.chunks, c)
		packPanelsVNNI(p.b[c.off:], b, p0, nv, n, k)
		p0 += nv
	}
}

// packPanelsVNNI writes the nv panels of 16 rows of b (n×k) from row
// 16·p0 into dst, zeroed: [group of 4 columns][panel][row][4], row by row,
// the whole groups as 4-byte moves (Repack runs this at every invoke).
func packPanelsVNNI(dst, b []int8, p0, nv, n, k int) {
	full, stride := k/4, nv*64
	for v := 0; v < nv; v++ {
		for l := 0; l < 16; l++ {
			j := (p0+v)*16 + l
			if j >= n {
				return
			}
			row := b[j*k : j*k+k]
			o := (v*16 + l) * 4
			for g := 0; g < full; g++ {
				s, d := row[4*g:4*g+4], dst[o+g*stride:o+g*stride+4]
				d[0], d[1], d[2], d[3] = s[0], s[1], s[2], s[3]
			}
			for x := 4 * full; x < k; x++ {
				dst[o+full*stride+x%4] = row[x]
			}
		}
	}
}

// safeRows is how many leading rows of a the int8 kernel may read whole:
// it reads 4·kg bytes from the start of each row, up to 3 past k, which
// must stay inside a's capacity.
func safeRows(m int, a []int8, lda, kg int) int {
	need := 4 * kg
	if cap(a) < need {
		return 0
	}
	return min(m, (cap(a)-need)/lda+1)
}

func gemmS8Arch(p *PackedS8, m int, a []int8, lda int, c []int32, ldc int) {
	if p.impl == implAVX2 {
		p.avx2(m, a, lda, c, nil, ldc, nil)
		return
	}
	p.vnni(m, a, lda, vnniOut{c: c, ldc: ldc})
}

func gemmRequantArch(p *PackedS8, m int, a []int8, lda int, q *Requant, out []int8, ldo int) bool {
	if p.impl == implAVX2 {
		p.avx2(m, a, lda, nil, out, ldo, q)
		return true
	}
	if p.impl != implVNNI {
		return false
	}
	p.vnni(m, a, lda, vnniOut{q: q, out: out, ldc: ldo})
	return true
}

// vnniOut is where the VNNI kernels write: int32 c, or int8 out through q.
type vnniOut struct {
	c   []int32
	q   *Requant
	out []int8
	ldc int
}

// vnni walks the register blocks of an int8 product over A's rows.
func (p *PackedS8) vnni(m int, a []int8, lda int, o vnniOut) {
	safe := safeRows(m, a, lda, p.kg)
	mc := max(16, rowBlockBytes/lda)
	for ib := 0; ib < safe; ib += mc {
		ie := min(safe, ib+mc)
		for ci := range p.chunks {
			ch := &p.chunks[ci]
			mr := s8vnniMR[ch.nv]
			for i := ib; i < ie; i += mr {
				p.vnniCall(i, min(mr, ie-i), ch, &a[i*lda], lda, &o)
			}
		}
	}
	if safe < m {
		// The last rows through a zero-padded copy.
		var buf [512]int8
		tmp := buf[:]
		if 4*p.kg > len(buf) {
			tmp = make([]int8, 4*p.kg)
		}
		tmp = tmp[:4*p.kg]
		clear(tmp)
		for i := safe; i < m; i++ {
			copy(tmp, a[i*lda:i*lda+p.k])
			for ci := range p.chunks {
				p.vnniCall(i, 1, &p.chunks[ci], &tmp[0], len(tmp), &o)
			}
		}
	}
}

// vnniCall runs the kernel for r rows from row i of chunk ch, A at ap.
func (p *PackedS8) vnniCall(i, r int, ch *chunk, ap *int8, lda int, o *vnniOut) {
	if o.q == nil {
		s8vnniCall(ch.nv, r, ap, lda, &p.b[ch.off], p.kg, &o.c[i*o.ldc+ch.p0*16], o.ldc, &p.corr[ch.p0*16], ch.mask)
		return
	}
	// Direct calls, not a func value, so that escape analysis sees the
	// assembly's //go:noescape (see dispatch in asm_gen.go).
	b, out, corr, qv, qc := &p.b[ch.off], &o.out[i*o.ldc+ch.p0*16], &p.corr[ch.p0*16], &o.q.vec[ch.p0*o.q.fields*16], &o.q.consts[0]
	if o.q.ruy {
		s8vnniRqRuyCall(ch.nv, r, ap, lda, b, p.kg, out, o.ldc, corr, qv, qc, ch.mask)
		return
	}
	s8vnniRqCall(ch.nv, r, ap, lda, b, p.kg, out, o.ldc, corr, qv, qc, ch.mask)
}

// f32Masks[c] enables the first c of 8 lanes for VMASKMOVPS.
var f32Masks = func() (t [9][8]int32) {
	for c := range t {
		for l := 0; l < c; l++ {
			t[c][l] = -1
		}
	}
	return t
}()

func packF32Arch(p *PackedF32, b []float32) {
	n, k := p.n, p.k
	np := (n + 7) / 8
	p.b = make([]float32, np*8*k)
	for p0 := 0; p0 < np; {
		nv := min(2, np-p0)
		c := chunk{nv: nv, p0: p0, off: p0 * 8 * k}
		if last := n - (p0+nv-1)*8; last < 8 {
			c.mask = uint64(last)
		}
		p.chunks = append(p.chunks, c)
		dst := p.b[c.off:]
		for x := 0; x < k; x++ {
			for v := 0; v < nv; v++ {
				for l := 0; l < 8; l++ {
					if j := (p0+v)*8 + l; j < n {
						dst[(x*nv+v)*8+l] = b[j*k+x]
					}
				}
			}
		}
		p0 += nv
	}
}

func gemmF32Arch(p *PackedF32, m int, a []float32, lda int, c []float32, ldc int, acc bool) {
	mc := max(16, rowBlockBytes/(4*max(lda, 1)))
	for ib := 0; ib < m; ib += mc {
		ie := min(m, ib+mc)
		for ci := range p.chunks {
			ch := &p.chunks[ci]
			var mask *int32
			if ch.mask != 0 {
				mask = &f32Masks[ch.mask][0]
			}
			mr := f32fmaMR[ch.nv]
			for i := ib; i < ie; i += mr {
				if acc {
					f32fmaAccCall(ch.nv, min(mr, ie-i), &a[i*lda], lda, &p.b[ch.off], p.k, &c[i*ldc+ch.p0*8], ldc, mask)
					continue
				}
				f32fmaCall(ch.nv, min(mr, ie-i), &a[i*lda], lda, &p.b[ch.off], p.k, &c[i*ldc+ch.p0*8], ldc, mask)
			}
		}
	}
}

func gemmSegsF32Arch(p *PackedF32, m int, a []float32, lda, segs, segStride int, c []float32, ldc int) {
	kr := p.k / segs
	for ci := range p.chunks {
		ch := &p.chunks[ci]
		var mask *int32
		if ch.mask != 0 {
			mask = &f32Masks[ch.mask][0]
		}
		mr := f32fmaMR[ch.nv]
		for i := 0; i < m; i += mr {
			f32fmaSegsCall(ch.nv, min(mr, m-i), &a[i*lda], lda, &p.b[ch.off], kr, &c[i*ldc+ch.p0*8], ldc, mask, segs, segStride)
		}
	}
}

// packS8AVX2 packs B as int16 for s8avx2 kernels: chunks of up to two
// 8-channel panels, [pair of k][panel][8 channels][2].
func packS8AVX2(p *PackedS8, b []int8) {
	n, k := p.n, p.k
	np := (n + 7) / 8
	kp := (k + 1) / 2
	p.kg = kp
	p.b16 = reuse(p.b16, np*8*kp*2)
	for p0 := 0; p0 < np; {
		nv := min(2, np-p0)
		c := chunk{nv: nv, p0: p0, off: p0 * 8 * kp * 2}
		if last := n - (p0+nv-1)*8; last < 8 {
			c.mask = uint64(last)
		}
		p.chunks = append(p.chunks, c)
		dst := p.b16[c.off:]
		for g := 0; g < kp; g++ {
			for v := 0; v < nv; v++ {
				for l := 0; l < 8; l++ {
					j := (p0+v)*8 + l
					for t := 0; t < 2; t++ {
						if x := 2*g + t; j < n && x < k {
							dst[((g*nv+v)*8+l)*2+t] = int16(b[j*k+x])
						}
					}
				}
			}
		}
		p0 += nv
	}
}

// scratch16 recycles the int16 copies of A of the AVX2 path.
var scratch16 = sync.Pool{New: func() any { return new([]int16) }}

// avx2 runs the AVX2 int8 kernels over A's rows, writing c, or out through
// q when q is not nil.
func (p *PackedS8) avx2(m int, a []int8, lda int, c []int32, out []int8, ldc int, q *Requant) {
	k, kp := p.k, p.kg
	ld := 2 * kp
	mc := max(12, rowBlockBytes/(2*ld))
	sp := scratch16.Get().(*[]int16)
	defer scratch16.Put(sp)
	if need := min(m, mc) * ld; cap(*sp) < need {
		*sp = make([]int16, need)
	}
	s := (*sp)[:cap(*sp)]
	for ib := 0; ib < m; ib += mc {
		ie := min(m, ib+mc)
		_ = s[(ie-ib)*ld-1]
		_ = a[(ie-1)*lda+k-1]
		widenRows(&s[0], ld, &a[ib*lda], lda, ie-ib, k)
		for ci := range p.chunks {
			ch := &p.chunks[ci]
			mr := s8avx2MR[ch.nv]
			for i := ib; i < ie; i += mr {
				r := min(mr, ie-i)
				ap, bp, o := &s[(i-ib)*ld], &p.b16[ch.off], i*ldc+ch.p0*8
				switch {
				case q == nil:
					var mask *int32
					if ch.mask != 0 {
						mask = &f32Masks[ch.mask][0]
					}
					s8avx2Call(ch.nv, r, ap, ld, bp, kp, &c[o], ldc, mask)
				case ch.mask == 0:
					avx2RqCall(q.ruy, ch.nv, r, ap, ld, bp, kp, &out[o], ldc, q.avx2v(ch.p0), &q.avx2c[0])
				default:
					// No byte-masked store in AVX2: a partial panel goes
					// through a buffer.
					var tmp [12 * 16]int8 // rows ≤ s8avx2MR[1]
					avx2RqCall(q.ruy, ch.nv, r, ap, ld, bp, kp, &tmp[0], 16, q.avx2v(ch.p0), &q.avx2c[0])
					valid := (ch.nv-1)*8 + int(ch.mask)
					for x := 0; x < r; x++ {
						copy(out[o+x*ldc:o+x*ldc+valid], tmp[x*16:])
					}
				}
			}
		}
	}
}

// avx2RqCall calls the AVX2 requantizing kernel of the rounding mode.
func avx2RqCall(ruy bool, nv, mr int, a *int16, lda int, b *int16, kp int, out *int8, ldo int, qv *int32, qc *int32) {
	if ruy {
		s8avx2RqRuyCall(nv, mr, a, lda, b, kp, out, ldo, qv, qc)
		return
	}
	s8avx2RqCall(nv, mr, a, lda, b, kp, out, ldo, qv, qc)
}

// avx2v is where the per-channel values of 8-channel panel p0 start in q.vec.
func (q *Requant) avx2v(p0 int) *int32 {
	return &q.vec[p0/2*q.fields*16+p0%2*8]
}
