package tflite

import (
	"math"
	"sort"

	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

func init() {
	register(OpMaxPool2d, func() opKernel { return &pool{max: true} })
	register(OpAveragePool2d, func() opKernel { return &pool{} })
	register(OpResizeNearestNeighbor, func() opKernel { return &resizeNearest{} })
	register(OpGather, func() opKernel { return &gather{} })
	register(OpGatherNd, func() opKernel { return &gatherND{} })
	register(OpReduceMax, func() opKernel { return &reduce{kind: OpReduceMax} })
	register(OpReduceMin, func() opKernel { return &reduce{kind: OpReduceMin} })
	register(OpSum, func() opKernel { return &reduce{kind: OpSum} })
	register(OpMean, func() opKernel { return &reduce{kind: OpMean} })
	register(OpTopkV2, func() opKernel { return &topk{} })
	register(OpBatchMatmul, func() opKernel { return &batchMatmul{} })
	register(OpFullyConnected, func() opKernel { return &fullyConnected{} })
}

type pool struct {
	max    bool
	g      convGeom
	act    uint8
	lo, hi int32
}

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
	return nil
}

func (k *pool) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	g := &k.g
	if k.max && in.typ == models.Int8 {
		k.maxS8(ip, i8s(in.data), i8s(out.data))
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
			for x := 0; x < ow; x++ {
				s := srow + k.xs[x]*px
				copy(out.data[drow+x*px:drow+(x+1)*px], in.data[s:s+px])
			}
		}
	}
	return nil
}

type gather struct{ axis int }

func (k *gather) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 2, 1); err != nil {
		return err
	}
	p, idx, out := n.in[0], n.in[1], n.out[0]
	if idx.typ != models.Int32 && idx.typ != models.Int64 {
		return n.errorf("indices of type %s", idx.typ)
	}
	if n.op.OptInt(1, 0) != 0 {
		return n.errorf("%w: batch_dims", models.ErrUnsupported)
	}
	axis, err := normAxis(n, int(n.op.OptInt(0, 0)), len(p.shape))
	if err != nil {
		return err
	}
	k.axis = axis
	out.typ = p.typ
	out.quant = keepQuant(out, p)
	out.shape = append(append(append([]int(nil), p.shape[:axis]...), idx.shape...), p.shape[axis+1:]...)
	return nil
}

func (k *gather) eval(ip *Interpreter, n *node) error {
	p, idx, out := n.in[0], n.in[1], n.out[0]
	es := p.typ.Size()
	outer := product(p.shape[:k.axis])
	dim := p.shape[k.axis]
	inner := product(p.shape[k.axis+1:]) * es
	ni := idx.elems()
	for o := 0; o < outer; o++ {
		for i := 0; i < ni; i++ {
			x := int(getInt(idx, i))
			if x < 0 || x >= dim {
				return n.errorf("index %d out of range [0, %d)", x, dim)
			}
			d := (o*ni + i) * inner
			s := (o*dim + x) * inner
			copy(out.data[d:d+inner], p.data[s:s+inner])
		}
	}
	return nil
}

type gatherND struct{ depth, inner int }

func (k *gatherND) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 2, 1); err != nil {
		return err
	}
	p, idx, out := n.in[0], n.in[1], n.out[0]
	if idx.typ != models.Int32 && idx.typ != models.Int64 {
		return n.errorf("indices of type %s", idx.typ)
	}
	if len(idx.shape) == 0 {
		return n.errorf("scalar indices")
	}
	depth := idx.shape[len(idx.shape)-1]
	if depth > len(p.shape) {
		return n.errorf("index depth %d exceeds params rank %d", depth, len(p.shape))
	}
	k.depth = depth
	k.inner = product(p.shape[depth:])
	out.typ = p.typ
	out.quant = keepQuant(out, p)
	out.shape = append(append([]int(nil), idx.shape[:len(idx.shape)-1]...), p.shape[depth:]...)
	return nil
}

func (k *gatherND) eval(ip *Interpreter, n *node) error {
	p, idx, out := n.in[0], n.in[1], n.out[0]
	es := p.typ.Size()
	st := rowStrides(p.shape)
	rows := idx.elems() / max(k.depth, 1)
	if k.depth == 0 {
		rows = idx.elems()
	}
	chunk := k.inner * es
	for r := 0; r < rows; r++ {
		off := 0
		for j := 0; j < k.depth; j++ {
			x := int(getInt(idx, r*k.depth+j))
			if x < 0 || x >= p.shape[j] {
				return n.errorf("index %d out of range [0, %d) on axis %d", x, p.shape[j], j)
			}
			off += x * st[j]
		}
		copy(out.data[r*chunk:(r+1)*chunk], p.data[off*es:off*es+chunk])
	}
	return nil
}

type reduce struct {
	kind BuiltinOp
	axes []bool
}

func (k *reduce) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 2, 1); err != nil {
		return err
	}
	in, out := n.in[0], n.out[0]
	ax, ok := constInts(n.in[1])
	if !ok {
		return n.errorf("%w: non-constant axes", models.ErrUnsupported)
	}
	if in.typ != models.Float32 && !(k.kind == OpReduceMax || k.kind == OpReduceMin) {
		return n.errorf("%w: %s on %s", models.ErrUnsupported, k.kind, in.typ)
	}
	if in.typ != models.Float32 && in.typ != models.Int8 && in.typ != models.UInt8 {
		return n.errorf("%w: %s on %s", models.ErrUnsupported, k.kind, in.typ)
	}
	keep := n.op.OptBool(0)
	k.axes = make([]bool, len(in.shape))
	for _, a := range ax {
		a, err := normAxis(n, a, len(in.shape))
		if err != nil {
			return err
		}
		k.axes[a] = true
	}
	var shape []int
	for i, d := range in.shape {
		if k.axes[i] {
			if keep {
				shape = append(shape, 1)
			}
		} else {
			shape = append(shape, d)
		}
	}
	out.typ = in.typ
	out.quant = keepQuant(out, in)
	if in.typ != models.Float32 && !sameQuant(in, out) {
		return n.errorf("%w: requantizing %s", models.ErrUnsupported, k.kind)
	}
	out.shape = shape
	return nil
}

func (k *reduce) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	r := len(in.shape)
	ost := make([]int, r) // output stride per input dim (0 on reduced axes)
	s := 1
	for i := r - 1; i >= 0; i-- {
		if !k.axes[i] {
			ost[i] = s
			s *= in.shape[i]
		}
	}
	no := out.elems()
	acc := make([]float64, no)
	cnt := make([]int, no)
	for i := range acc {
		switch k.kind {
		case OpReduceMax:
			acc[i] = math.Inf(-1)
		case OpReduceMin:
			acc[i] = math.Inf(1)
		}
	}
	isF := in.typ == models.Float32
	var fx []float32
	if isF {
		fx = f32s(in.data)
	}
	ist := rowStrides(in.shape)
	total := in.elems()
	for i := 0; i < total; i++ {
		o, rem := 0, i
		for d := 0; d < r; d++ {
			c := rem / ist[d]
			rem %= ist[d]
			o += c * ost[d]
		}
		var v float64
		if isF {
			v = float64(fx[i])
		} else {
			v = float64(qget(in, i))
		}
		switch k.kind {
		case OpReduceMax:
			acc[o] = math.Max(acc[o], v)
		case OpReduceMin:
			acc[o] = math.Min(acc[o], v)
		default:
			acc[o] += v
		}
		cnt[o]++
	}
	for i := range acc {
		v := acc[i]
		if k.kind == OpMean && cnt[i] > 0 {
			v /= float64(cnt[i])
		}
		if isF {
			f32s(out.data)[i] = float32(v)
		} else {
			qput(out, i, int32(v))
		}
	}
	return nil
}

type topk struct{ k int }

func (k *topk) prepare(ip *Interpreter, n *node) error {
	if len(n.in) < 2 || n.in[0] == nil || n.in[1] == nil || len(n.out) != 2 {
		return n.errorf("needs input, k and two outputs")
	}
	in := n.in[0]
	kk, ok := constInts(n.in[1])
	if !ok || len(kk) != 1 {
		return n.errorf("%w: non-constant k", models.ErrUnsupported)
	}
	if len(in.shape) == 0 || kk[0] < 0 || kk[0] > in.shape[len(in.shape)-1] {
		return n.errorf("k %v out of range for %v", kk, in.shape)
	}
	if in.typ != models.Float32 && in.typ != models.Int32 && in.typ != models.Int8 && in.typ != models.UInt8 && in.typ != models.Int64 {
		return n.errorf("%w: TOPK_V2 on %s", models.ErrUnsupported, in.typ)
	}
	k.k = kk[0]
	shape := append([]int(nil), in.shape...)
	shape[len(shape)-1] = k.k
	n.out[0].typ, n.out[0].shape = in.typ, shape
	n.out[0].quant = keepQuant(n.out[0], in)
	n.out[1].shape = append([]int(nil), shape...)
	if n.out[1].typ != models.Int64 {
		n.out[1].typ = models.Int32
	}
	return nil
}

func (k *topk) eval(ip *Interpreter, n *node) error {
	in, vals, idxs := n.in[0], n.out[0], n.out[1]
	d := in.shape[len(in.shape)-1]
	if d == 0 {
		return nil
	}
	rows := in.elems() / d
	es := in.typ.Size()
	order := make([]int, d)
	key := make([]float64, d)
	for r := 0; r < rows; r++ {
		for i := 0; i < d; i++ {
			order[i] = i
			switch in.typ {
			case models.Float32:
				key[i] = float64(f32s(in.data)[r*d+i])
			case models.Int8, models.UInt8:
				key[i] = float64(qget(in, r*d+i))
			default:
				key[i] = float64(getInt(in, r*d+i))
			}
		}
		sort.SliceStable(order, func(a, b int) bool { return key[order[a]] > key[order[b]] })
		for j := 0; j < k.k; j++ {
			src := (r*d + order[j]) * es
			copy(vals.data[(r*k.k+j)*es:(r*k.k+j+1)*es], in.data[src:src+es])
			if idxs.typ == models.Int64 {
				i64s(idxs.data)[r*k.k+j] = int64(order[j])
			} else {
				i32s(idxs.data)[r*k.k+j] = int32(order[j])
			}
		}
	}
	return nil
}

type batchMatmul struct {
	adjX, adjY bool
	bc         bcast
	m, kd, nn  int
}

func (k *batchMatmul) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 2, 1); err != nil {
		return err
	}
	x, y, out := n.in[0], n.in[1], n.out[0]
	if x.typ != models.Float32 || y.typ != models.Float32 {
		return n.errorf("%w: BATCH_MATMUL on %s x %s", models.ErrUnsupported, x.typ, y.typ)
	}
	if len(x.shape) < 2 || len(y.shape) < 2 {
		return n.errorf("inputs %v and %v must be at least 2-D", x.shape, y.shape)
	}
	k.adjX, k.adjY = n.op.OptBool(0), n.op.OptBool(1)
	xr, yr := len(x.shape), len(y.shape)
	m, kx := x.shape[xr-2], x.shape[xr-1]
	if k.adjX {
		m, kx = kx, m
	}
	ky, nn := y.shape[yr-2], y.shape[yr-1]
	if k.adjY {
		ky, nn = nn, ky
	}
	if kx != ky {
		return n.errorf("inner dimensions %d and %d differ (%v x %v)", kx, ky, x.shape, y.shape)
	}
	bc, ok := newBcast(x.shape[:xr-2], y.shape[:yr-2])
	if !ok {
		return n.errorf("batch dimensions of %v and %v do not broadcast", x.shape, y.shape)
	}
	k.bc, k.m, k.kd, k.nn = bc, m, kx, nn
	out.typ = models.Float32
	out.shape = append(append([]int(nil), bc.out...), m, nn)
	return nil
}

func (k *batchMatmul) eval(ip *Interpreter, n *node) error {
	x, y, out := f32s(n.in[0].data), f32s(n.in[1].data), f32s(n.out[0].data)
	m, kd, nn := k.m, k.kd, k.nn
	xs, ys, os := m*kd, kd*nn, m*nn
	k.bc.each(func(o, ia, ib, sa, sb, cnt int) {
		for j := 0; j < cnt; j++ {
			a := x[(ia+j*sa)*xs:]
			b := y[(ib+j*sb)*ys:]
			c := out[(o+j)*os:]
			for i := 0; i < m; i++ {
				for q := 0; q < nn; q++ {
					var s float32
					for t := 0; t < kd; t++ {
						var av, bv float32
						if k.adjX {
							av = a[t*m+i]
						} else {
							av = a[i*kd+t]
						}
						if k.adjY {
							bv = b[q*kd+t]
						} else {
							bv = b[t*nn+q]
						}
						s += av * bv
					}
					c[i*nn+q] = s
				}
			}
		}
	})
	return nil
}

type fullyConnected struct {
	kind    string
	in, out int
	rows    int
	act     uint8
	packed  *kernel.PackedS8
	krq     *kernel.Requant
	packedF *kernel.PackedF32
	biasAdj []int32
	rq      requant
	zo      int32
	lo, hi  int32
	biasF   []float32
	flo     float32
	fhi     float32
}

func (k *fullyConnected) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 2, 1); err != nil {
		return err
	}
	x, w, out := n.in[0], n.in[1], n.out[0]
	var bias *rtensor
	if len(n.in) > 2 {
		bias = n.in[2]
	}
	if len(w.shape) != 2 {
		return n.errorf("weights must be 2-D, got %v", w.shape)
	}
	if n.op.OptByte(1, 0) != 0 {
		return n.errorf("%w: shuffled weights format", models.ErrUnsupported)
	}
	k.act = n.op.OptByte(0, 0)
	keep := n.op.OptBool(2)
	k.out, k.in = w.shape[0], w.shape[1]
	if k.in == 0 || x.elems()%k.in != 0 {
		return n.errorf("input %v does not fit weights %v", x.shape, w.shape)
	}
	k.rows = x.elems() / k.in
	if keep {
		out.shape = append(append([]int(nil), x.shape[:len(x.shape)-1]...), k.out)
	} else {
		out.shape = []int{k.rows, k.out}
	}
	if bias != nil && (!bias.konst || bias.elems() != k.out) {
		return n.errorf("%w: bias must be constant with %d elements", models.ErrUnsupported, k.out)
	}
	if !w.konst {
		return k.prepareDynamic(n, x, w, bias, out)
	}
	switch {
	case x.typ == models.Int8 && w.typ == models.Int8 && isQuantized(x) && isQuantized(w) && isQuantized(out):
		k.kind = "s8"
		out.typ = models.Int8
		for _, zp := range w.quant.ZeroPoint {
			if zp != 0 {
				return n.errorf("%w: weights with zero point %d", models.ErrUnsupported, zp)
			}
		}
		k.packed = kernel.PackS8(k.out, k.in, i8s(w.data))
		sums := k.packed.RowSums()
		var b []int32
		if bias != nil {
			if bias.typ != models.Int32 {
				return n.errorf("%w: %s bias", models.ErrUnsupported, bias.typ)
			}
			b = i32s(bias.data)
		}
		k.biasAdj = make([]int32, k.out)
		k.rq = requant{q: make([]int32, k.out), shift: make([]int, k.out)}
		for c := range k.biasAdj {
			if b != nil {
				k.biasAdj[c] = b[c]
			}
			k.biasAdj[c] -= x.zp() * sums[c]
			ws := w.quant.Scale[0]
			if len(w.quant.Scale) > 1 {
				ws = w.quant.Scale[c]
			}
			k.rq.q[c], k.rq.shift[c] = quantizeMultiplier(float64(x.quant.Scale[0]) * float64(ws) / float64(out.quant.Scale[0]))
		}
		k.zo = out.zp()
		k.lo, k.hi = actRange(k.act, out)
		mult, shift := make([]int32, k.out), make([]int32, k.out)
		for c := range mult {
			mult[c], shift[c] = k.rq.q[c], int32(k.rq.shift[c])
		}
		krq, err := kernel.NewRequantRuy(k.out, k.biasAdj, mult, shift, k.zo, k.lo, k.hi)
		if err != nil {
			return n.errorf("%v", err)
		}
		k.krq = krq
		return nil
	case x.typ == models.Float32 && (w.typ == models.Float32 || w.typ == models.Int8):
		k.kind = "f32"
		out.typ = models.Float32
		var wf []float32
		if w.typ == models.Float32 {
			wf = f32s(w.data)
		} else {
			if w.quant == nil {
				return n.errorf("int8 weights without quantization")
			}
			wf = dequantWeights(w, false)
		}
		k.packedF = kernel.PackF32(k.out, k.in, wf)
		k.biasF = make([]float32, k.out)
		if bias != nil {
			if bias.typ != models.Float32 {
				return n.errorf("%w: %s bias", models.ErrUnsupported, bias.typ)
			}
			copy(k.biasF, f32s(bias.data))
		}
		k.flo, k.fhi = actFloat(k.act)
		return nil
	}
	return n.errorf("%w: FULLY_CONNECTED %s x %s", models.ErrUnsupported, x.typ, w.typ)
}

func (k *fullyConnected) eval(ip *Interpreter, n *node) error {
	x, out := n.in[0], n.out[0]
	switch k.kind {
	case "dyn-s8":
		return k.evalDynamicS8(n)
	case "dyn-f32":
		return k.evalDynamicF32(n)
	}
	if k.kind == "s8" {
		k.packed.GemmRequant(k.rows, i8s(x.data), k.in, k.krq, i8s(out.data), k.out)
		return nil
	}
	o := f32s(out.data)
	k.packedF.Gemm(k.rows, f32s(x.data), k.in, o, k.out)
	biasAct(o, k.biasF, k.flo, k.fhi)
	return nil
}

// prepareDynamic handles weights computed by the graph (attention blocks use
// FULLY_CONNECTED as a matrix product of two activations).
func (k *fullyConnected) prepareDynamic(n *node, x, w, bias, out *rtensor) error {
	if x.typ != w.typ {
		return n.errorf("%w: %s input with %s weights", models.ErrUnsupported, x.typ, w.typ)
	}
	if bias != nil && !bias.konst {
		return n.errorf("%w: non-constant bias", models.ErrUnsupported)
	}
	switch x.typ {
	case models.Float32:
		k.kind = "dyn-f32"
		out.typ = models.Float32
		k.biasF = make([]float32, k.out)
		if bias != nil {
			copy(k.biasF, f32s(bias.data))
		}
		k.flo, k.fhi = actFloat(k.act)
		return nil
	case models.Int8:
		if !isQuantized(x) || !isQuantized(w) || !isQuantized(out) || len(w.quant.Scale) != 1 {
			return n.errorf("%w: dynamic int8 weights need per-tensor quantization", models.ErrUnsupported)
		}
		k.kind = "dyn-s8"
		out.typ = models.Int8
		k.biasAdj = make([]int32, k.out)
		if bias != nil {
			if bias.typ != models.Int32 {
				return n.errorf("%w: %s bias", models.ErrUnsupported, bias.typ)
			}
			copy(k.biasAdj, i32s(bias.data))
		}
		q, s := quantizeMultiplier(x.scale() * w.scale() / out.scale())
		k.rq = requant{q: []int32{q}, shift: []int{s}}
		k.zo = out.zp()
		k.lo, k.hi = actRange(k.act, out)
		return nil
	}
	return n.errorf("%w: FULLY_CONNECTED on %s", models.ErrUnsupported, x.typ)
}

func (k *fullyConnected) evalDynamicS8(n *node) error {
	x, w, out := n.in[0], n.in[1], n.out[0]
	xs, ws, os := i8s(x.data), i8s(w.data), i8s(out.data)
	zx, zw := x.zp(), w.zp()
	q, s := k.rq.at(0)
	for r := 0; r < k.rows; r++ {
		xr := xs[r*k.in : (r+1)*k.in]
		for c := 0; c < k.out; c++ {
			wr := ws[c*k.in : (c+1)*k.in]
			acc := k.biasAdj[c]
			for i, v := range xr {
				acc += (int32(v) - zx) * (int32(wr[i]) - zw)
			}
			os[r*k.out+c] = int8(clamp32(mbqmRuy(acc, q, s)+k.zo, k.lo, k.hi))
		}
	}
	return nil
}

func (k *fullyConnected) evalDynamicF32(n *node) error {
	xs, ws, os := f32s(n.in[0].data), f32s(n.in[1].data), f32s(n.out[0].data)
	for r := 0; r < k.rows; r++ {
		xr := xs[r*k.in : (r+1)*k.in]
		for c := 0; c < k.out; c++ {
			wr := ws[c*k.in : (c+1)*k.in]
			acc := k.biasF[c]
			for i, v := range xr {
				acc += v * wr[i]
			}
			os[r*k.out+c] = min(max(acc, k.flo), k.fhi)
		}
	}
	return nil
}

// maxS8 is the int8 max-pool fast path.
func (k *pool) maxS8(ip *Interpreter, src, dst []int8) {
	g := &k.g
	lo, hi := int8(k.lo), int8(k.hi)
	rows := g.n * g.oh
	ip.parallel(rows, 4, func(_, r0, r1 int) {
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			y0, y1 := max(oy*g.sh-g.padTop, 0), min(oy*g.sh-g.padTop+g.kh, g.ih)
			for ox := 0; ox < g.ow; ox++ {
				x0, x1 := max(ox*g.sw-g.padLeft, 0), min(ox*g.sw-g.padLeft+g.kw, g.iw)
				d := dst[((b*g.oh+oy)*g.ow+ox)*g.oc:][:g.ic]
				for c := range d {
					d[c] = -128
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
