package kernel

import "fmt"

// ConvRowS8 is the filter of an int8 convolution with few input channels
// (the first layer of a network, on the 3-channel image), packed to run
// straight from the input rows without an im2col: each of the kh kernel
// rows of a pixel's patch is kw·c contiguous bytes, read in 4-byte groups
// whose bytes past kw·c meet zero weights.
type ConvRowS8 struct {
	n, kh, span, stride int
	groups              int     // 4-byte groups of a kernel row
	offs                []int32 // byte offset of each group from the patch's start
	w                   []int8  // [vector][kh·groups][16 channels][4], zero-padded
	w32                 []int32 // the weights as [n][kh][span], for the plain loop
	sums                []int32
	corr                []int32 // -128·Σw per channel, padded to vectors
}

// PackConvRowS8 packs the weights w, laid out [n][kh][kw][c] as TFLite's
// CONV_2D filter, of a convolution whose input rows lie stride bytes apart.
func PackConvRowS8(n, kh, kw, c, stride int, w []int8) (*ConvRowS8, error) {
	span := kw * c
	if n <= 0 || kh <= 0 || span <= 0 || len(w) != n*kh*span || stride < span {
		return nil, fmt.Errorf("kernel: PackConvRowS8: %d weights for %d channels of %dx%dx%d, row stride %d", len(w), n, kh, kw, c, stride)
	}
	p := &ConvRowS8{n: n, kh: kh, span: span, stride: stride, groups: (span + 3) / 4}
	ng := kh * p.groups
	nv := (n + 15) / 16
	p.w = make([]int8, nv*ng*64)
	p.w32 = make([]int32, len(w))
	p.sums = make([]int32, n)
	p.corr = make([]int32, nv*16)
	for ky := 0; ky < kh; ky++ {
		for g := 0; g < p.groups; g++ {
			p.offs = append(p.offs, int32(ky*stride+4*g))
		}
	}
	for j := 0; j < n; j++ {
		for ky := 0; ky < kh; ky++ {
			for x := 0; x < span; x++ {
				v := w[(j*kh+ky)*span+x]
				gi := ky*p.groups + x/4
				p.w[((j/16*ng+gi)*16+j%16)*4+x%4] = v
				p.w32[(j*kh+ky)*span+x] = int32(v)
				p.sums[j] += int32(v)
			}
		}
		p.corr[j] = -128 * p.sums[j]
	}
	return p, nil
}

// RowSums returns Σ_k w[j][k] per output channel, for folding the input
// zero point into the bias: bias[j] - zeroIn·RowSums()[j].
func (p *ConvRowS8) RowSums() []int32 { return p.sums }

// Reach is how many bytes past a pixel's patch start Run reads: the last
// kernel row's groups, up to 3 bytes past its kw·c.
func (p *ConvRowS8) Reach() int { return (p.kh-1)*p.stride + 4*p.groups }

// Run computes npix output pixels of n = q.N() channels: pixel i's patch
// starts at src[i·step], kernel row ky of it at ky·stride, and
//
//	dst[i·n + j] = q requantizes Σ_{ky, x < kw·c} src[i·step + ky·stride + x] · w[j][ky][x]
//
// exactly in int32 (the input zero point goes into q's bias). AVX-512 VNNI
// on amd64 with the single rounding (NewRequantRuy), plain Go otherwise.
// It panics when src or dst is too short or q is for another number of
// channels (bugs in the caller).
func (p *ConvRowS8) Run(dst, src []int8, npix, step int, q *Requant) {
	if npix <= 0 {
		return
	}
	if q.n != p.n {
		panic(errRequantSize)
	}
	if step < 0 || len(dst) < npix*p.n || len(src) < (npix-1)*step+p.Reach() {
		panic(fmt.Sprintf("kernel: ConvRowS8.Run: %d pixels step %d reaching %d in %d inputs, %d outputs", npix, step, p.Reach(), len(src), len(dst)))
	}
	if hasConvRowArch && q.ruy {
		tail := tailMask(p.n)
		nv := (p.n + 15) / 16
		convRowS8Arch(&dst[0], &src[0], npix, step, &p.offs[0], len(p.offs), &p.w[0], nv, p.n, &p.corr[0], &q.vec[0], &q.consts[0], tail)
		return
	}
	p.runGo(dst, src, npix, step, q)
}

// runGo is Run in plain Go.
func (p *ConvRowS8) runGo(dst, src []int8, npix, step int, q *Requant) {
	for i := 0; i < npix; i++ {
		d := dst[i*p.n:][:p.n]
		for j := range d {
			var acc int32
			for ky := 0; ky < p.kh; ky++ {
				s := src[i*step+ky*p.stride:][:p.span]
				w := p.w32[(j*p.kh+ky)*p.span:][:p.span]
				for x, v := range s {
					acc += int32(v) * w[x]
				}
			}
			d[j] = q.apply(acc, j)
		}
	}
}

// ConvRowS8Fast reports whether ConvRowS8.Run has an assembly path on this
// CPU (with the single rounding); without one an im2col and the GEMM are
// faster.
func ConvRowS8Fast() bool { return hasConvRowArch }
