package tflite

import (
	"math"

	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

// Pooling (MAX_POOL_2D, AVERAGE_POOL_2D) and RESIZE_NEAREST_NEIGHBOR.

func init() {
	register(OpMaxPool2d, func() opKernel { return &pool{max: true} })
	register(OpAveragePool2d, func() opKernel { return &pool{} })
	register(OpResizeNearestNeighbor, func() opKernel { return &resizeNearest{} })
}

type pool struct {
	max    bool
	g      convGeom
	act    uint8
	lo, hi int32
	// rowMax holds the maxima along x of every input row (ih × ow pixels
	// per image) for the two-pass max pool, when that is small; else nil.
	rowMax []byte
}

// maxSepBytes bounds the row-maxima buffer of a separable max pool.
var maxSepBytes = 1 << 20 // a variable for tests

func (k *pool) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 1, 1); err != nil {
		return err
	}
	in, out := n.in[0], n.out[0]
	if len(in.shape) != 4 {
		return n.errorf("input %v must be 4-D", in.shape)
	}
	op := n.op
	pad := op.OptByte(0, 0)
	g := convGeom{n: in.shape[0], ih: in.shape[1], iw: in.shape[2], ic: in.shape[3], oc: in.shape[3], dh: 1, dw: 1}
	g.sw, g.sh = int(op.OptInt(1, 1)), int(op.OptInt(2, 1))
	g.kw, g.kh = int(op.OptInt(3, 1)), int(op.OptInt(4, 1))
	k.act = op.OptByte(5, 0)
	if g.sw <= 0 || g.sh <= 0 || g.kw <= 0 || g.kh <= 0 || g.kw > 1024 || g.kh > 1024 {
		return n.errorf("bad pool window %dx%d stride %dx%d", g.kh, g.kw, g.sh, g.sw)
	}
	g.oh, g.padTop = padding(pad, g.ih, g.kh, g.sh, 1)
	g.ow, g.padLeft = padding(pad, g.iw, g.kw, g.sw, 1)
	if g.oh <= 0 || g.ow <= 0 {
		return n.errorf("window larger than input")
	}
	k.g = g
	out.typ = in.typ
	out.quant = keepQuant(out, in)
	out.shape = []int{g.n, g.oh, g.ow, g.oc}
	switch in.typ {
	case models.Float32:
	case models.Int8, models.UInt8:
		k.lo, k.hi = actRange(k.act, out)
	default:
		return n.errorf("%w: pooling on %s", models.ErrUnsupported, in.typ)
	}
	k.rowMax = nil
	if sz := g.n * g.ih * g.ow * g.ic * in.typ.Size(); k.max && g.kh > 1 && sz <= maxSepBytes {
		k.rowMax = make([]byte, sz)
	}
	return nil
}

// maxPoolSep is a max pool in two passes, exact as max is: the maximum
// along x of each input row's windows, then along y of those rows, whole
// output rows at a time (the SPPF's 5x5 pools: 10 comparisons per output
// instead of 25). init is the type's lowest value; maxf and clampf are the
// kernel's vector maximum and clamp for T. Each output takes its window's
// inputs in the order of the reference loop (x ascending, then y).
func maxPoolSep[T int8 | float32](ip *Interpreter, g *convGeom, src, dst, h []T, init, lo, hi T,
	maxf func(dst, src []T), clampf func(x []T, lo, hi T)) {
	rowIn, rowH, ic := g.iw*g.ic, g.ow*g.ic, g.ic
	ip.parallel(g.n*g.ih, 4, func(_, r0, r1 int) {
		for r := r0; r < r1; r++ {
			srow, hrow := src[r*rowIn:][:rowIn], h[r*rowH:][:rowH]
			fill(hrow, init)
			if g.sw == 1 {
				// Window column kx of every output pixel at once: input
				// pixels ox+kx-padLeft, a contiguous run.
				for kx := 0; kx < g.kw; kx++ {
					o0, o1 := max(0, g.padLeft-kx), min(g.ow, g.iw+g.padLeft-kx)
					if o0 < o1 {
						i0 := o0 + kx - g.padLeft
						maxf(hrow[o0*ic:o1*ic], srow[i0*ic:])
					}
				}
				continue
			}
			for ox := 0; ox < g.ow; ox++ {
				x0, x1 := max(ox*g.sw-g.padLeft, 0), min(ox*g.sw-g.padLeft+g.kw, g.iw)
				d := hrow[ox*ic:][:ic]
				for ix := x0; ix < x1; ix++ {
					maxf(d, srow[ix*ic:])
				}
			}
		}
	})
	ip.parallel(g.n*g.oh, 4, func(_, r0, r1 int) {
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			y0, y1 := max(oy*g.sh-g.padTop, 0), min(oy*g.sh-g.padTop+g.kh, g.ih)
			d := dst[r*rowH:][:rowH]
			fill(d, init)
			for iy := y0; iy < y1; iy++ {
				maxf(d, h[(b*g.ih+iy)*rowH:])
			}
			clampf(d, lo, hi)
		}
	})
}

// fill sets every element of d to v by doubling copies.
func fill[T any](d []T, v T) {
	if len(d) == 0 {
		return
	}
	d[0] = v
	for n := 1; n < len(d); n *= 2 {
		copy(d[n:], d[:n])
	}
}

func (k *pool) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	g := &k.g
	switch {
	case k.max && in.typ == models.Int8 && k.rowMax != nil:
		maxPoolSep(ip, g, i8s(in.data), i8s(out.data), i8s(k.rowMax), -128, int8(k.lo), int8(k.hi), kernel.MaxInt8, kernel.ClampInt8)
		return nil
	case k.max && in.typ == models.Float32 && k.rowMax != nil:
		lo, hi := actFloat(k.act)
		maxPoolSep(ip, g, f32s(in.data), f32s(out.data), f32s(k.rowMax), -math.MaxFloat32, lo, hi, kernel.MaxF32, kernel.ClampF32)
		return nil
	case k.max && in.typ == models.Int8:
		maxPoolDirect(ip, g, i8s(in.data), i8s(out.data), -128, int8(k.lo), int8(k.hi))
		return nil
	case k.max && in.typ == models.Float32:
		lo, hi := actFloat(k.act)
		maxPoolDirect(ip, g, f32s(in.data), f32s(out.data), -math.MaxFloat32, lo, hi)
		return nil
	}
	isF := in.typ == models.Float32
	var fx, fy []float32
	if isF {
		fx, fy = f32s(in.data), f32s(out.data)
	}
	flo, fhi := actFloat(k.act)
	rows := g.n * g.oh
	ip.parallel(rows, 4, func(_, r0, r1 int) {
		acc := make([]float64, g.ic)
		qacc := make([]int32, g.ic)
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			y0, y1 := max(oy*g.sh-g.padTop, 0), min(oy*g.sh-g.padTop+g.kh, g.ih)
			for ox := 0; ox < g.ow; ox++ {
				x0, x1 := max(ox*g.sw-g.padLeft, 0), min(ox*g.sw-g.padLeft+g.kw, g.iw)
				cnt := int32((y1 - y0) * (x1 - x0))
				for c := range acc {
					if k.max {
						acc[c] = math.Inf(-1)
						qacc[c] = math.MinInt32
					} else {
						acc[c], qacc[c] = 0, 0
					}
				}
				for iy := y0; iy < y1; iy++ {
					for ix := x0; ix < x1; ix++ {
						base := ((b*g.ih+iy)*g.iw + ix) * g.ic
						for c := 0; c < g.ic; c++ {
							if isF {
								v := float64(fx[base+c])
								if k.max {
									acc[c] = math.Max(acc[c], v)
								} else {
									acc[c] += v
								}
							} else {
								v := qget(in, base+c)
								if k.max {
									qacc[c] = max(qacc[c], v)
								} else {
									qacc[c] += v
								}
							}
						}
					}
				}
				ob := ((b*g.oh+oy)*g.ow + ox) * g.oc
				for c := 0; c < g.ic; c++ {
					if isF {
						v := acc[c]
						if !k.max && cnt > 0 {
							v /= float64(cnt)
						}
						fy[ob+c] = min(max(float32(v), flo), fhi)
						continue
					}
					v := qacc[c]
					if !k.max && cnt > 0 {
						if v > 0 {
							v = (v + cnt/2) / cnt
						} else {
							v = (v - cnt/2) / cnt
						}
					}
					qput(out, ob+c, clamp32(v, k.lo, k.hi))
				}
			}
		}
	})
	return nil
}

// maxPoolDirect is the max pool as TFLite's reference loop: std::max over
// the window from the type's lowest value, then the activation's clamp.
func maxPoolDirect[T int8 | float32](ip *Interpreter, g *convGeom, src, dst []T, init, lo, hi T) {
	rows := g.n * g.oh
	ip.parallel(rows, 4, func(_, r0, r1 int) {
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			y0, y1 := max(oy*g.sh-g.padTop, 0), min(oy*g.sh-g.padTop+g.kh, g.ih)
			for ox := 0; ox < g.ow; ox++ {
				x0, x1 := max(ox*g.sw-g.padLeft, 0), min(ox*g.sw-g.padLeft+g.kw, g.iw)
				d := dst[((b*g.oh+oy)*g.ow+ox)*g.oc:][:g.ic]
				for c := range d {
					d[c] = init
				}
				for iy := y0; iy < y1; iy++ {
					for ix := x0; ix < x1; ix++ {
						s := src[((b*g.ih+iy)*g.iw+ix)*g.ic:][:len(d)]
						for c, v := range s {
							if v > d[c] {
								d[c] = v
							}
						}
					}
				}
				for c, v := range d {
					d[c] = min(max(v, lo), hi)
				}
			}
		}
	})
}

type resizeNearest struct {
	ys, xs []int
}

func nearestIndex(x, in, out int, align, half bool) int {
	scale := float32(in) / float32(out)
	if align && out > 1 {
		scale = float32(in-1) / float32(out-1)
	}
	off := float32(0)
	if half {
		off = 0.5
	}
	var v int
	if align {
		v = int(math.Round(float64((float32(x) + off) * scale)))
	} else {
		v = int(math.Floor(float64((float32(x) + off) * scale)))
	}
	v = min(v, in-1)
	if half {
		v = max(v, 0)
	}
	return v
}

func (k *resizeNearest) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 2, 1); err != nil {
		return err
	}
	in, out := n.in[0], n.out[0]
	size, ok := constInts(n.in[1])
	if !ok || len(size) != 2 || len(in.shape) != 4 {
		return n.errorf("%w: needs a 4-D input and a constant [h, w] size", models.ErrUnsupported)
	}
	if size[0] <= 0 || size[1] <= 0 || size[0] > 1<<14 || size[1] > 1<<14 {
		return n.errorf("bad size %v", size)
	}
	align, half := n.op.OptBool(0), n.op.OptBool(1)
	k.ys, k.xs = make([]int, size[0]), make([]int, size[1])
	for i := range k.ys {
		k.ys[i] = nearestIndex(i, in.shape[1], size[0], align, half)
	}
	for i := range k.xs {
		k.xs[i] = nearestIndex(i, in.shape[2], size[1], align, half)
	}
	out.typ = in.typ
	out.quant = keepQuant(out, in)
	out.shape = []int{in.shape[0], size[0], size[1], in.shape[3]}
	return nil
}

func (k *resizeNearest) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	es := in.typ.Size()
	b, ih, iw, c := in.shape[0], in.shape[1], in.shape[2], in.shape[3]
	_ = ih
	px := c * es
	oh, ow := len(k.ys), len(k.xs)
	for bi := 0; bi < b; bi++ {
		for y := 0; y < oh; y++ {
			srow := ((bi*in.shape[1] + k.ys[y]) * iw) * px
			drow := ((bi*oh + y) * ow) * px
			if y > 0 && k.ys[y] == k.ys[y-1] { // the row above again (upsampling)
				copy(out.data[drow:drow+ow*px], out.data[drow-ow*px:drow])
				continue
			}
			for x := 0; x < ow; x++ {
				s := srow + k.xs[x]*px
				copy(out.data[drow+x*px:drow+(x+1)*px], in.data[s:s+px])
			}
		}
	}
	return nil
}
