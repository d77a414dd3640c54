package tflite

import (
	"fmt"

	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

func init() {
	register(OpConv2d, func() opKernel { return &conv{} })
	register(OpDepthwiseConv2d, func() opKernel { return &conv{depthwise: true} })
}

// Padding codes of the schema.
const (
	padSame  = 0
	padValid = 1
)

// convGeom is the geometry shared by convolutions and pooling.
type convGeom struct {
	n, ih, iw, ic   int
	oh, ow, oc      int
	kh, kw          int
	sh, sw, dh, dw  int
	padTop, padLeft int
}

// outSize and padding as TFLite's ComputePaddingHeightWidth.
func padding(pad uint8, in, k, stride, dil int) (out, before int) {
	eff := (k-1)*dil + 1
	if pad == padSame {
		out = (in + stride - 1) / stride
	} else {
		out = (in - eff + stride) / stride
	}
	total := max((out-1)*stride+eff-in, 0)
	return out, total / 2
}

type conv struct {
	depthwise bool
	g         convGeom
	act       uint8
	mult      int // depth multiplier
	kind      string
	// int8
	packed   *kernel.PackedS8
	krqRuy   *kernel.Requant // single rounding, as native TFLite (ruy)
	rq       requant
	biasAdj  []int32
	lo, hi   int32
	inZP     int32
	outZP    int32
	filterS8 []int8
	filterW  []int32         // depthwise int8 filter for kernel.DepthwiseS8 (multiplier 1)
	dwRq     *kernel.Requant // its requantization (double rounding, as the plain loop)
	// float (and hybrid: int8 weights dequantized at load)
	packedF *kernel.PackedF32
	fscale  []float32 // hybrid int8 path: filter scale per output channel
	hcorr   []int32   // hybrid int8 path, per invoke: zp·Σw per output channel
	hmul    []float32 // hybrid int8 path, per invoke: input scale·filter scale
	filterF []float32
	filterG []float32           // grouped: the filter as [kh][kw][oc][ic/groups]
	rowsF   []*kernel.PackedF32 // per filter row, for convF32Rows; nil: im2col
	biasF   []float32
	flo     float32
	fhi     float32
	k       int
	groups  int  // > 1 for grouped convolution (run by the direct loop)
	direct  bool // 1x1, stride 1, no padding: the input is the im2col matrix
	// fusedPad is the (top, bottom, left, right) padding of a PAD folded
	// into this convolution (fuse_pad.go); rowConv runs an int8 convolution
	// on few input channels from its input rows (op_conv_first.go).
	fusedPad  *[4]int
	rowConv   *kernel.ConvRowS8
	rowStride int
	post      *convPost // a fused SiLU to apply to each output tile (fuse.go), or nil
}

const tileM = 64

func (c *conv) prepare(ip *Interpreter, n *node) error {
	if len(n.in) < 2 || len(n.out) != 1 || n.in[0] == nil || n.in[1] == nil {
		return n.errorf("needs input, filter (and bias) and one output")
	}
	in, f, out := n.in[0], n.in[1], n.out[0]
	var bias *rtensor
	if len(n.in) > 2 {
		bias = n.in[2]
	}
	if len(in.shape) != 4 || len(f.shape) != 4 {
		return n.errorf("input %v and filter %v must be 4-D", in.shape, f.shape)
	}
	if !f.konst {
		return n.errorf("%w: non-constant filter", models.ErrUnsupported)
	}
	op := n.op
	var pad uint8
	g := convGeom{n: in.shape[0], ih: in.shape[1], iw: in.shape[2], ic: in.shape[3], kh: f.shape[1], kw: f.shape[2]}
	if c.depthwise {
		pad = op.OptByte(0, 0)
		g.sw, g.sh = int(op.OptInt(1, 1)), int(op.OptInt(2, 1))
		c.mult = int(op.OptInt(3, 1))
		c.act = op.OptByte(4, 0)
		g.dw, g.dh = int(op.OptInt(5, 1)), int(op.OptInt(6, 1))
		g.oc = f.shape[3]
		if f.shape[0] != 1 {
			return n.errorf("depthwise filter %v must have leading 1", f.shape)
		}
		if c.mult <= 0 || g.oc != g.ic*c.mult {
			c.mult = g.oc / max(g.ic, 1)
			if g.oc != g.ic*c.mult {
				return n.errorf("depthwise: %d output channels is not a multiple of %d input channels", g.oc, g.ic)
			}
		}
	} else {
		pad = op.OptByte(0, 0)
		g.sw, g.sh = int(op.OptInt(1, 1)), int(op.OptInt(2, 1))
		c.act = op.OptByte(3, 0)
		g.dw, g.dh = int(op.OptInt(4, 1)), int(op.OptInt(5, 1))
		g.oc = f.shape[0]
		if f.shape[3] != g.ic {
			if f.shape[3] == 0 || g.ic%f.shape[3] != 0 {
				return n.errorf("filter depth %d does not match input channels %d", f.shape[3], g.ic)
			}
			c.groups = g.ic / f.shape[3]
			if g.oc%c.groups != 0 {
				return n.errorf("%d output channels do not split in %d groups", g.oc, c.groups)
			}
		}
	}
	if g.sw <= 0 || g.sh <= 0 || g.dw <= 0 || g.dh <= 0 || g.sw > 64 || g.sh > 64 || g.dw > 64 || g.dh > 64 {
		return n.errorf("bad stride %dx%d or dilation %dx%d", g.sh, g.sw, g.dh, g.dw)
	}
	if pad != padSame && pad != padValid {
		return n.errorf("unknown padding %d", pad)
	}
	g.oh, g.padTop = padding(pad, g.ih, g.kh, g.sh, g.dh)
	g.ow, g.padLeft = padding(pad, g.iw, g.kw, g.sw, g.dw)
	c.applyFusedPad(&g) // fuse_pad.go
	if g.oh <= 0 || g.ow <= 0 {
		return n.errorf("filter %dx%d larger than input %dx%d", g.kh, g.kw, g.ih, g.iw)
	}
	c.g = g
	out.shape = []int{g.n, g.oh, g.ow, g.oc}
	if bias != nil {
		if bias.elems() != g.oc {
			return n.errorf("bias has %d elements for %d channels", bias.elems(), g.oc)
		}
		if !bias.konst {
			return n.errorf("%w: non-constant bias", models.ErrUnsupported)
		}
	}
	c.k = g.kh * g.kw * g.ic
	if c.groups > 1 {
		return c.prepareGrouped(n, in, f, bias, out)
	}
	c.direct = !c.depthwise && g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.padTop == 0 && g.padLeft == 0 && c.fusedPad == nil
	switch {
	case in.typ == models.Int8 && f.typ == models.Int8 && isQuantized(in) && isQuantized(f):
		out.typ = models.Int8
		return c.prepareS8(ip, n, in, f, bias, out)
	case in.typ == models.Float32 && f.typ == models.Float32:
		out.typ = models.Float32
		c.kind = "f32"
		return c.prepareF32(ip, n, f32s(f.data), bias)
	case in.typ == models.Float32 && f.typ == models.Int8 && f.quant != nil:
		// Hybrid (dynamic-range) model: int8 weights, float activations.
		// Dequantizing the weights once keeps float accuracy.
		out.typ = models.Float32
		c.kind = "hybrid"
		if hybridS8OK(c, f) {
			return c.prepareHybridS8(ip, n, in, f, bias)
		}
		return c.prepareF32(ip, n, dequantWeights(f, c.depthwise), bias)
	}
	return n.errorf("%w: input %s with filter %s", models.ErrUnsupported, in.typ, f.typ)
}

// dequantWeights turns per-channel int8 weights into float32.
func dequantWeights(f *rtensor, depthwise bool) []float32 {
	w := i8s(f.data)
	out := make([]float32, len(w))
	q := f.quant
	axisLen := f.shape[q.Axis]
	inner := 1
	for _, d := range f.shape[q.Axis+1:] {
		inner *= d
	}
	for i, v := range w {
		c := 0
		if len(q.Scale) > 1 {
			c = (i / inner) % axisLen
		}
		out[i] = q.Scale[c] * float32(int64(v)-q.ZeroPoint[c])
	}
	return out
}

func (c *conv) prepareS8(ip *Interpreter, n *node, in, f, bias, out *rtensor) error {
	c.kind = "s8"
	if !isQuantized(out) {
		return n.errorf("int8 output is not quantized")
	}
	g := c.g
	fq := f.quant
	for _, zp := range fq.ZeroPoint {
		if zp != 0 {
			return n.errorf("%w: int8 filter with non-zero zero point %d", models.ErrUnsupported, zp)
		}
	}
	chanAxis := 0
	if c.depthwise {
		chanAxis = 3
	}
	if len(fq.Scale) > 1 && fq.Axis != chanAxis {
		return n.errorf("per-channel filter quantized on axis %d, want %d", fq.Axis, chanAxis)
	}
	c.inZP, c.outZP = in.zp(), out.zp()
	c.lo, c.hi = actRange(c.act, out)
	c.rq = requant{q: make([]int32, g.oc), shift: make([]int, g.oc)}
	for ch := 0; ch < g.oc; ch++ {
		fs := fq.Scale[0]
		if len(fq.Scale) > 1 {
			fs = fq.Scale[ch]
		}
		// TFLite computes the effective scale in double from float scales.
		eff := float64(in.quant.Scale[0]) * float64(fs) / float64(out.quant.Scale[0])
		c.rq.q[ch], c.rq.shift[ch] = quantizeMultiplier(eff)
	}
	var b []int32
	if bias != nil {
		if bias.typ != models.Int32 {
			return n.errorf("%w: %s bias for int8 convolution", models.ErrUnsupported, bias.typ)
		}
		b = i32s(bias.data)
	}
	c.biasAdj = make([]int32, g.oc)
	if c.depthwise {
		c.filterS8 = i8s(f.data)
		if err := c.prepareDepthwiseS8(ip, b); err != nil {
			return n.errorf("%v", err)
		}
		return nil
	}
	c.packed = kernel.PackS8(g.oc, c.k, i8s(f.data))
	sums := c.packed.RowSums()
	for ch := range c.biasAdj {
		var bv int32
		if b != nil {
			bv = b[ch]
		}
		c.biasAdj[ch] = bv - c.inZP*sums[ch]
	}
	mult, shift := c.rq.kernelArgs(g.oc)
	krqRuy, err := kernel.NewRequantRuy(g.oc, c.biasAdj, mult, shift, c.outZP, c.lo, c.hi)
	if err != nil {
		return n.errorf("%v", err)
	}
	c.krqRuy = krqRuy
	if err := c.prepareRowConv(ip, i8s(f.data)); err != nil { // op_conv_first.go
		return n.errorf("%v", err)
	}
	if !c.direct {
		ip.needScratch(tileM * c.k)
	}
	return nil
}

// prepareDepthwiseS8 finishes prepareS8 for a depthwise convolution: per
// worker accumulators and the (source, filter) offsets of a pixel's taps,
// and for multiplier 1 the widened filter and kernel.DepthwiseS8's
// requantization.
func (c *conv) prepareDepthwiseS8(ip *Interpreter, b []int32) error {
	g := &c.g
	ip.needScratch(g.oc*4 + g.kh*g.kw*8)
	for ch := range c.biasAdj {
		if b != nil {
			c.biasAdj[ch] = b[ch]
		}
	}
	if c.mult != 1 {
		return nil
	}
	c.filterW = kernel.WidenDepthwiseS8(c.filterS8)
	mult, shift := c.rq.kernelArgs(g.oc)
	var err error
	c.dwRq, err = kernel.NewRequant(g.oc, c.biasAdj, mult, shift, c.outZP, c.lo, c.hi)
	return err
}

// prepareBiasF sets the float bias and activation range.
func (c *conv) prepareBiasF(n *node, bias *rtensor) error {
	c.flo, c.fhi = actFloat(c.act)
	c.biasF = make([]float32, c.g.oc)
	if bias != nil {
		if bias.typ != models.Float32 {
			return n.errorf("%w: %s bias for float convolution", models.ErrUnsupported, bias.typ)
		}
		copy(c.biasF, f32s(bias.data))
	}
	return nil
}

func (c *conv) prepareF32(ip *Interpreter, n *node, w []float32, bias *rtensor) error {
	g := c.g
	if err := c.prepareBiasF(n, bias); err != nil {
		return err
	}
	if c.depthwise {
		c.filterF = w
		ip.needScratch(g.kh * g.kw * 8) // the taps of a pixel (multiplier 1)
		return nil
	}
	c.packedF = kernel.PackF32(g.oc, c.k, w)
	if c.prepareRowsF32(ip, w); c.rowsF == nil && !c.direct {
		ip.needScratch(tileM * c.k * 4)
	}
	return nil
}

func (c *conv) eval(ip *Interpreter, n *node) error {
	switch {
	case c.groups > 1:
		c.grouped(ip, n.in[0], n.out[0])
	case c.depthwise && c.kind == "s8":
		c.depthwiseS8(ip, n.in[0], n.out[0])
	case c.depthwise:
		c.depthwiseF32(ip, n.in[0], n.out[0])
	case c.kind == "s8":
		c.convS8(ip, n.in[0], n.out[0])
	case c.kind == "hybrid-s8":
		c.convHybridS8(ip, n.in[0], n.out[0])
	default:
		c.convF32(ip, n.in[0], n.out[0])
	}
	return nil
}

// im2col fills rows [m0, m1) of the patch matrix (row = output pixel,
// columns kh·kw·ic), padding with padVal (the input zero point).
func im2col[T int8 | float32](g *convGeom, src []T, dst []T, m0, m1 int, padVal T) {
	if s, ok := any(src).([]int8); ok && im2colWords(g) {
		im2colS8Words(g, u8s(s), u8s(any(dst).([]int8)), m0, m1, any(padVal).(int8))
		return
	}
	im2colRows(g, src, dst, m0, m1, padVal)
}

// im2colRows is im2col, any geometry.
func im2colRows[T int8 | float32](g *convGeom, src []T, dst []T, m0, m1 int, padVal T) {
	k := g.kh * g.kw * g.ic
	for m := m0; m < m1; m++ {
		row := dst[(m-m0)*k : (m-m0+1)*k]
		b := m / (g.oh * g.ow)
		r := m % (g.oh * g.ow)
		oy, ox := r/g.ow, r%g.ow
		iy0 := oy*g.sh - g.padTop
		ix0 := ox*g.sw - g.padLeft
		p := 0
		for ky := 0; ky < g.kh; ky++ {
			iy := iy0 + ky*g.dh
			if iy < 0 || iy >= g.ih {
				for j := 0; j < g.kw*g.ic; j++ {
					row[p+j] = padVal
				}
				p += g.kw * g.ic
				continue
			}
			base := (b*g.ih + iy) * g.iw
			if g.dw == 1 && ix0 >= 0 && ix0+g.kw <= g.iw {
				s := (base + ix0) * g.ic
				copy(row[p:p+g.kw*g.ic], src[s:s+g.kw*g.ic])
				p += g.kw * g.ic
				continue
			}
			for kx := 0; kx < g.kw; kx++ {
				ix := ix0 + kx*g.dw
				if ix < 0 || ix >= g.iw {
					for j := 0; j < g.ic; j++ {
						row[p+j] = padVal
					}
				} else {
					s := (base + ix) * g.ic
					copy(row[p:p+g.ic], src[s:s+g.ic])
				}
				p += g.ic
			}
		}
	}
}

// convTileRows is the rows of output pixels per tile for a product of M
// rows on threads threads: tileM, or for small M (the 20x20 and 40x40
// layers) a little less, so that the tiles are equal and a multiple of the
// threads: 400 rows on 2 threads are 8 tiles of 50, not 6 of 64 and one of
// 16 (4 tiles against 3). Never more than tileM (the scratch is sized
// for that).
func convTileRows(M, threads int) int {
	if threads <= 1 || M <= 0 {
		return tileM
	}
	per := (M + tileM*threads - 1) / (tileM * threads) // tiles per thread
	return (M + per*threads - 1) / (per * threads)
}

// convTiles runs fn on tiles of about tileM output pixels, split over the
// workers one tile at a time. a is the tile's patch matrix: the input itself
// for a direct 1x1 convolution, else the tile's im2col in the worker's
// scratch.
func convTiles[T int8 | float32](ip *Interpreter, c *conv, src []T, view func([]byte) []T, pad T, fn func(m0, m1 int, a []T)) {
	g := &c.g
	M := g.n * g.oh * g.ow
	tm := convTileRows(M, ip.threads)
	tiles := (M + tm - 1) / tm
	ip.parallelChunks(tiles, tiles, ip.threads, func(w, t0, t1 int) {
		var col []T
		if !c.direct {
			col = view(ip.scratch[w])
		}
		for t := t0; t < t1; t++ {
			m0, m1 := t*tm, min(M, (t+1)*tm)
			if c.direct {
				fn(m0, m1, src[m0*c.k:m1*c.k])
				continue
			}
			im2col(g, src, col, m0, m1, pad)
			fn(m0, m1, col[:(m1-m0)*c.k])
		}
	})
}

func (c *conv) convS8(ip *Interpreter, in, out *rtensor) {
	if c.rowConv != nil {
		c.convS8Rows(ip, in, out) // op_conv_first.go
		return
	}
	oc := c.g.oc
	dst := i8s(out.data)
	convTiles(ip, c, i8s(in.data), i8s, int8(c.inZP), func(m0, m1 int, a []int8) {
		// TFLite's conv rounds once (ruy), so the single-rounding epilogue.
		c.packed.GemmRequant(m1-m0, a, c.k, c.krqRuy, dst[m0*oc:m1*oc], oc)
		c.post.s8(out.data[m0*oc : m1*oc])
	})
}

func (c *conv) convF32(ip *Interpreter, in, out *rtensor) {
	if c.rowsF != nil {
		c.convF32Rows(ip, in, out)
		return
	}
	oc := c.g.oc
	dst := f32s(out.data)
	convTiles(ip, c, f32s(in.data), f32s, 0, func(m0, m1 int, a []float32) {
		o := dst[m0*oc : m1*oc]
		c.packedF.Gemm(m1-m0, a, c.k, o, oc)
		kernel.BiasClampF32(o, c.biasF, c.flo, c.fhi)
		c.post.f32(o)
	})
}

// taps appends the (input offset, filter offset) pairs of the depthwise
// taps of output pixel (b, oy, ox) that fall inside the input.
func (g *convGeom) taps(taps []int32, b, oy, ox int) []int32 {
	for ky := 0; ky < g.kh; ky++ {
		iy := oy*g.sh - g.padTop + ky*g.dh
		if iy < 0 || iy >= g.ih {
			continue
		}
		for kx := 0; kx < g.kw; kx++ {
			ix := ox*g.sw - g.padLeft + kx*g.dw
			if ix < 0 || ix >= g.iw {
				continue
			}
			taps = append(taps, int32(((b*g.ih+iy)*g.iw+ix)*g.ic), int32((ky*g.kw+kx)*g.oc))
		}
	}
	return taps
}

// depthwiseS8Mult1 is depthwiseS8 for depth multiplier 1 (every YOLO
// depthwise layer): kernel.DepthwiseS8 over all channels, requantizing as
// the plain loop does (double rounding), one call for each border pixel and
// one for the interior run of each output row, whose pixels share the
// taps shifted by the stride.
func (c *conv) depthwiseS8Mult1(ip *Interpreter, in, out *rtensor) {
	g := &c.g
	src, dst := i8s(in.data), i8s(out.data)
	lo, hi := g.interiorCols()
	rows := g.n * g.oh
	ip.parallel(rows, 1, func(worker, r0, r1 int) {
		taps := i32s(ip.scratch[worker])[: 0 : 2*g.kh*g.kw]
		pixel := func(b, oy, ox, npix int) {
			taps = g.taps(taps[:0], b, oy, ox)
			d := dst[((b*g.oh+oy)*g.ow+ox)*g.oc:]
			kernel.DepthwiseS8(d, src, c.filterW, taps, npix, g.sw*g.ic, c.inZP, c.dwRq)
		}
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			for ox := 0; ox < lo; ox++ {
				pixel(b, oy, ox, 1)
			}
			if hi > lo {
				pixel(b, oy, lo, hi-lo)
			}
			for ox := max(lo, hi); ox < g.ow; ox++ {
				pixel(b, oy, ox, 1)
			}
		}
	})
}

// interiorCols returns the output columns [lo, hi) whose taps all fall
// inside the input's width (hi ≤ lo when there are none).
func (g *convGeom) interiorCols() (lo, hi int) {
	lo = min((g.padLeft+g.sw-1)/g.sw, g.ow)
	last := g.iw - 1 - (g.kw-1)*g.dw + g.padLeft // largest ox·sw
	if last < 0 {
		return lo, 0
	}
	return lo, min(last/g.sw+1, g.ow)
}

func (c *conv) depthwiseS8(ip *Interpreter, in, out *rtensor) {
	if c.filterW != nil {
		c.depthwiseS8Mult1(ip, in, out)
		return
	}
	g := &c.g
	src := i8s(in.data)
	dst := i8s(out.data)
	w := c.filterS8
	rows := g.n * g.oh
	ip.parallel(rows, 1, func(worker, r0, r1 int) {
		acc := i32s(ip.scratch[worker])[:g.oc]
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			for ox := 0; ox < g.ow; ox++ {
				copy(acc, c.biasAdj)
				for ky := 0; ky < g.kh; ky++ {
					iy := oy*g.sh - g.padTop + ky*g.dh
					if iy < 0 || iy >= g.ih {
						continue
					}
					for kx := 0; kx < g.kw; kx++ {
						ix := ox*g.sw - g.padLeft + kx*g.dw
						if ix < 0 || ix >= g.iw {
							continue
						}
						s := src[((b*g.ih+iy)*g.iw+ix)*g.ic:]
						f := w[(ky*g.kw+kx)*g.oc:]
						for ic := 0; ic < g.ic; ic++ {
							x := int32(s[ic]) - c.inZP
							for m := 0; m < c.mult; m++ {
								oc := ic*c.mult + m
								acc[oc] += x * int32(f[oc])
							}
						}
					}
				}
				d := dst[((b*g.oh+oy)*g.ow+ox)*g.oc:]
				for oc := 0; oc < g.oc; oc++ {
					q, s := c.rq.at(oc)
					d[oc] = int8(clamp32(mbqm(acc[oc], q, s)+c.outZP, c.lo, c.hi))
				}
			}
		}
	})
}

// depthwiseF32Mult1 is depthwiseF32 for depth multiplier 1: the taps of
// each output pixel in one kernel call over all channels.
func (c *conv) depthwiseF32Mult1(ip *Interpreter, in, out *rtensor) {
	g := &c.g
	src, dst := f32s(in.data), f32s(out.data)
	rows := g.n * g.oh
	ip.parallel(rows, 1, func(worker, r0, r1 int) {
		taps := i32s(ip.scratch[worker])[: 0 : 2*g.kh*g.kw]
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			for ox := 0; ox < g.ow; ox++ {
				taps = g.taps(taps[:0], b, oy, ox)
				d := dst[((b*g.oh+oy)*g.ow+ox)*g.oc:][:g.oc]
				copy(d, c.biasF)
				kernel.DepthwiseAccF32(d, src, c.filterF, taps)
				for oc, v := range d {
					d[oc] = min(max(v, c.flo), c.fhi)
				}
			}
		}
	})
}

func (c *conv) depthwiseF32(ip *Interpreter, in, out *rtensor) {
	if c.mult == 1 {
		c.depthwiseF32Mult1(ip, in, out)
		return
	}
	g := &c.g
	src := f32s(in.data)
	dst := f32s(out.data)
	w := c.filterF
	rows := g.n * g.oh
	ip.parallel(rows, 1, func(_, r0, r1 int) {
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			for ox := 0; ox < g.ow; ox++ {
				d := dst[((b*g.oh+oy)*g.ow+ox)*g.oc:][:g.oc]
				copy(d, c.biasF)
				for ky := 0; ky < g.kh; ky++ {
					iy := oy*g.sh - g.padTop + ky*g.dh
					if iy < 0 || iy >= g.ih {
						continue
					}
					for kx := 0; kx < g.kw; kx++ {
						ix := ox*g.sw - g.padLeft + kx*g.dw
						if ix < 0 || ix >= g.iw {
							continue
						}
						s := src[((b*g.ih+iy)*g.iw+ix)*g.ic:][:g.ic]
						f := w[(ky*g.kw+kx)*g.oc:][:g.oc]
						if c.mult == 1 {
							for ic, x := range s {
								d[ic] += x * f[ic]
							}
							continue
						}
						for ic, x := range s {
							for m := 0; m < c.mult; m++ {
								oc := ic*c.mult + m
								d[oc] += x * f[oc]
							}
						}
					}
				}
				for oc := range d {
					d[oc] = min(max(d[oc], c.flo), c.fhi)
				}
			}
		}
	})
}

var _ = fmt.Sprintf

// prepareGrouped handles float (and hybrid) grouped convolutions with a
// direct loop; int8 grouped convolutions are rare and not implemented.
func (c *conv) prepareGrouped(n *node, in, f, bias, out *rtensor) error {
	switch {
	case in.typ == models.Float32 && f.typ == models.Float32:
		c.filterF = f32s(f.data)
	case in.typ == models.Float32 && f.typ == models.Int8 && f.quant != nil:
		c.filterF = dequantWeights(f, false)
	default:
		return n.errorf("%w: grouped convolution on %s with %s filter", models.ErrUnsupported, in.typ, f.typ)
	}
	// [oc][kh][kw][icg] to [kh][kw][oc][icg]
	g, icg := c.g, c.g.ic/c.groups
	c.filterG = make([]float32, len(c.filterF))
	for oc := 0; oc < g.oc; oc++ {
		for t := 0; t < g.kh*g.kw; t++ {
			copy(c.filterG[(t*g.oc+oc)*icg:][:icg], c.filterF[(oc*g.kh*g.kw+t)*icg:][:icg])
		}
	}
	out.typ = models.Float32
	c.kind = "grouped"
	c.flo, c.fhi = actFloat(c.act)
	c.biasF = make([]float32, c.g.oc)
	if bias != nil {
		if bias.typ != models.Float32 {
			return n.errorf("%w: %s bias", models.ErrUnsupported, bias.typ)
		}
		copy(c.biasF, f32s(bias.data))
	}
	return nil
}

// grouped runs the taps of each output pixel in turn over all output
// channels, with the filter laid out [kh][kw][oc][ic/groups] (filterG):
// every channel still sums its bias and then its products in (ky, kx, ic)
// order, as a direct loop per channel would.
func (c *conv) grouped(ip *Interpreter, in, out *rtensor) {
	g := &c.g
	src, dst, w := f32s(in.data), f32s(out.data), c.filterG
	icg, ocg := g.ic/c.groups, g.oc/c.groups
	rows := g.n * g.oh
	ip.parallel(rows, 1, func(_, r0, r1 int) {
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			for ox := 0; ox < g.ow; ox++ {
				d := dst[((b*g.oh+oy)*g.ow+ox)*g.oc:][:g.oc]
				copy(d, c.biasF)
				for ky := 0; ky < g.kh; ky++ {
					iy := oy*g.sh - g.padTop + ky*g.dh
					if iy < 0 || iy >= g.ih {
						continue
					}
					for kx := 0; kx < g.kw; kx++ {
						ix := ox*g.sw - g.padLeft + kx*g.dw
						if ix < 0 || ix >= g.iw {
							continue
						}
						x := src[((b*g.ih+iy)*g.iw+ix)*g.ic:][:g.ic]
						f := w[(ky*g.kw+kx)*g.oc*icg:][:g.oc*icg]
						if icg == 1 && ocg == 1 {
							for oc, v := range x {
								d[oc] += v * f[oc]
							}
							continue
						}
						for oc := range d {
							xg, fo := x[(oc/ocg)*icg:][:icg], f[oc*icg:][:icg]
							s := d[oc]
							for i, v := range xg {
								s += v * fo[i]
							}
							d[oc] = s
						}
					}
				}
				for oc, v := range d {
					d[oc] = min(max(v, c.flo), c.fhi)
				}
			}
		}
	})
}
