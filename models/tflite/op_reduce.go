package tflite

import (
	"math"
	"sort"

	"edgefleet/models"
)

// Reductions (REDUCE_MAX, REDUCE_MIN, SUM, MEAN) and TOPK_V2.

func init() {
	register(OpReduceMax, func() opKernel { return &reduce{kind: OpReduceMax} })
	register(OpReduceMin, func() opKernel { return &reduce{kind: OpReduceMin} })
	register(OpSum, func() opKernel { return &reduce{kind: OpSum} })
	register(OpMean, func() opKernel { return &reduce{kind: OpMean} })
	register(OpTopkV2, func() opKernel { return &topk{} })
}

type reduce struct {
	kind BuiltinOp
	axes []bool
	acc  []float64 // float sums over a run of axes, one per inner element
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
	if _, _, inner, ok := k.span(in.shape); ok && (k.kind == OpSum || k.kind == OpMean) {
		k.acc = make([]float64, inner)
	}
	return nil
}

// span returns the input as outer × red × inner when the reduced axes are
// one run of adjacent dimensions (ok false otherwise).
func (k *reduce) span(shape []int) (outer, red, inner int, ok bool) {
	first, last := -1, -1
	for i, a := range k.axes {
		if a {
			if first < 0 {
				first = i
			} else if last != i-1 {
				return 0, 0, 0, false
			}
			last = i
		}
	}
	if first < 0 {
		return 0, 0, 0, false
	}
	return product(shape[:first]), product(shape[first : last+1]), product(shape[last+1:]), true
}

// spanF32 is the float32 reduction over a run of adjacent axes: every
// output sees its values in input order, as in the general loop, so sums
// round the same; max and min (Go's, which are math.Max's and math.Min's:
// NaN wins, +0 over -0) do not depend on the order and run in float32,
// where they agree with float64.
func (k *reduce) spanF32(x, y []float32, outer, red, inner int) {
	acc := k.acc
	for o := 0; o < outer; o++ {
		xo, yo := x[o*red*inner:][:red*inner], y[o*inner:][:inner]
		switch k.kind {
		case OpReduceMax, OpReduceMin:
			if inner == 1 {
				v := xo[0]
				for _, u := range xo[1:] {
					if k.kind == OpReduceMax {
						v = max(v, u)
					} else {
						v = min(v, u)
					}
				}
				yo[0] = v
				continue
			}
			copy(yo, xo[:inner])
			for r := 1; r < red; r++ {
				row := xo[r*inner:][:inner]
				if k.kind == OpReduceMax {
					for i, v := range row {
						yo[i] = max(yo[i], v)
					}
				} else {
					for i, v := range row {
						yo[i] = min(yo[i], v)
					}
				}
			}
		default:
			clear(acc)
			for r := 0; r < red; r++ {
				for i, v := range xo[r*inner:][:inner] {
					acc[i] += float64(v)
				}
			}
			for i, v := range acc {
				if k.kind == OpMean {
					v /= float64(red)
				}
				yo[i] = float32(v)
			}
		}
	}
}

func (k *reduce) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	if outer, red, inner, ok := k.span(in.shape); ok && in.typ == models.Float32 && red > 0 {
		k.spanF32(f32s(in.data), f32s(out.data), outer, red, inner)
		return nil
	}
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

type topk struct {
	k    int
	key  []float64 // one row's keys
	heap []int     // the k best indices so far
}

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
	if cap(k.key) < d {
		k.key, k.heap = make([]float64, d), make([]int, 0, k.k)
	}
	key := k.key[:d]
	for r := 0; r < rows; r++ {
		for i := range key {
			switch in.typ {
			case models.Float32:
				key[i] = float64(f32s(in.data)[r*d+i])
			case models.Int8, models.UInt8:
				key[i] = float64(qget(in, r*d+i))
			default:
				key[i] = float64(getInt(in, r*d+i))
			}
		}
		order := k.best(key)
		for j, o := range order {
			src := (r*d + o) * es
			copy(vals.data[(r*k.k+j)*es:(r*k.k+j+1)*es], in.data[src:src+es])
			if idxs.typ == models.Int64 {
				i64s(idxs.data)[r*k.k+j] = int64(o)
			} else {
				i32s(idxs.data)[r*k.k+j] = int32(o)
			}
		}
	}
	return nil
}

// best returns the indices of the k greatest keys, greatest first and equal
// keys in index order: the first k of a stable descending sort, found with
// a k-element heap (its root the worst kept).
func (k *topk) best(key []float64) []int {
	better := func(a, b int) bool { return key[a] > key[b] || (key[a] == key[b] && a < b) }
	h := k.heap[:0]
	down := func(i int) {
		for {
			w, l, r := i, 2*i+1, 2*i+2
			if l < len(h) && better(h[w], h[l]) {
				w = l
			}
			if r < len(h) && better(h[w], h[r]) {
				w = r
			}
			if w == i {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for i := range key {
		switch {
		case len(h) < k.k:
			h = append(h, i)
			for c := len(h) - 1; c > 0; {
				p := (c - 1) / 2
				if !better(h[p], h[c]) {
					break
				}
				h[p], h[c] = h[c], h[p]
				c = p
			}
		case k.k > 0 && better(i, h[0]):
			h[0] = i
			down(0)
		}
	}
	k.heap = h
	sort.Slice(h, func(a, b int) bool { return better(h[a], h[b]) })
	return h
}
