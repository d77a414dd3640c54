package tflite

import "edgefleet/models/tflite/kernel"

// convRowsF32 turns on the in-place path of float convolutions with few
// input channels (convF32Rows); a variable for tests, which compare it with
// the im2col path.
var convRowsF32 = true

// convRowsMaxIC bounds the input channels of the in-place path: with few
// channels im2col copies short runs for little arithmetic (the stem of a
// network: 3 channels), with many it is cheap next to the GEMM.
const convRowsMaxIC = 8

// prepareRowsF32 sets up convF32Rows when the convolution suits it: not
// 1x1 direct, no dilation along x, few input channels. It packs the filter
// once per filter row ky, as B over that row's kw·ic taps.
func (c *conv) prepareRowsF32(ip *Interpreter, w []float32) {
	g := &c.g
	if !convRowsF32 || c.direct || c.depthwise || c.groups > 1 || g.dw != 1 || g.ic > convRowsMaxIC {
		return
	}
	kr := g.kw * g.ic
	c.rowsF = make([]*kernel.PackedF32, g.kh)
	b := make([]float32, g.oc*kr)
	for ky := range c.rowsF {
		for j := 0; j < g.oc; j++ {
			copy(b[j*kr:(j+1)*kr], w[j*c.k+ky*kr:])
		}
		c.rowsF[ky] = kernel.PackF32(g.oc, kr, b)
	}
	ip.needScratch((kr + c.k) * 4) // a row of zeros, a border pixel's im2col
}

// convF32Rows is convF32 without im2col, one output row at a time. The
// patch row of an output pixel is kh runs of kw·ic contiguous input values
// (one per filter row, dh·iw·ic apart) and those runs of neighbouring
// pixels are sw·ic apart, so the row is one GemmSegs that reads the input
// in place (rows of A overlapping, lda = sw·ic), in Gemm's order over
// k = (ky, kx, ic): the result is Gemm over the im2col matrix bit for bit.
// Where filter rows fall in the vertical padding, each filter row is a
// GemmAcc that continues the sums, a padded one adding a row of zeros as
// im2col's padding would. Pixels with taps in the horizontal padding go
// through im2col one at a time.
func (c *conv) convF32Rows(ip *Interpreter, in, out *rtensor) {
	g := &c.g
	src, dst := f32s(in.data), f32s(out.data)
	oc, kr := g.oc, g.kw*g.ic
	x0, x1 := g.interiorCols() // dw is 1 here
	x1 = max(x0, x1)
	ip.parallel(g.n*g.oh, 1, func(w, r0, r1 int) {
		sc := f32s(ip.scratch[w])
		zero, col := sc[:kr], sc[kr:kr+c.k]
		clear(zero)
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			o := dst[r*g.ow*oc : (r+1)*g.ow*oc]
			iy0 := oy*g.sh - g.padTop
			switch ci := o[x0*oc : x1*oc]; {
			case x1 <= x0:
			case iy0 >= 0 && iy0+(g.kh-1)*g.dh < g.ih:
				s := ((b*g.ih+iy0)*g.iw + x0*g.sw - g.padLeft) * g.ic
				c.packedF.GemmSegs(x1-x0, src[s:], g.sw*g.ic, g.kh, g.dh*g.iw*g.ic, ci, oc)
			default:
				clear(ci)
				for ky, p := range c.rowsF {
					iy := oy*g.sh - g.padTop + ky*g.dh
					if iy < 0 || iy >= g.ih {
						p.GemmAcc(x1-x0, zero, 0, ci, oc)
						continue
					}
					s := ((b*g.ih+iy)*g.iw + x0*g.sw - g.padLeft) * g.ic
					p.GemmAcc(x1-x0, src[s:], g.sw*g.ic, ci, oc)
				}
			}
			for ox := 0; ox < g.ow; ox++ {
				if ox >= x0 && ox < x1 {
					continue
				}
				m := r*g.ow + ox
				im2col(g, src, col, m, m+1, 0)
				c.packedF.Gemm(1, col, c.k, o[ox*oc:(ox+1)*oc], oc)
			}
			kernel.BiasClampF32(o, c.biasF, c.flo, c.fhi)
			if len(o)%16 == 0 { // rows on whole vectors: the fused SiLU's bytes are the whole-tensor pass's
				c.post.f32(o)
			}
		}
	})
}
