package tflite

import (
	"fmt"
	"math"

	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

func init() {
	register(OpReshape, func() opKernel { return &reshape{} })
	register(OpSqueeze, func() opKernel { return &reshape{} })
	register(OpExpandDims, func() opKernel { return &reshape{} })
	register(OpConcatenation, func() opKernel { return &concat{} })
	register(OpStridedSlice, func() opKernel { return &stridedSlice{} })
	register(OpTranspose, func() opKernel { return &transpose{} })
	register(OpSplit, func() opKernel { return &split{} })
	register(OpPack, func() opKernel { return &pack{} })
	register(OpPad, func() opKernel { return &pad{} })
	register(OpPadv2, func() opKernel { return &pad{v2: true} })
	register(OpTile, func() opKernel { return &tile{} })
}

// constInts reads a constant int32/int64 tensor.
func constInts(t *rtensor) ([]int, bool) {
	if t == nil || !t.konst {
		return nil, false
	}
	switch t.typ {
	case models.Int32:
		v := i32s(t.data)
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = int(x)
		}
		return out, true
	case models.Int64:
		v := i64s(t.data)
		out := make([]int, len(v))
		for i, x := range v {
			if x > math.MaxInt32 || x < math.MinInt32 {
				return nil, false
			}
			out[i] = int(x)
		}
		return out, true
	}
	return nil, false
}

func needIO(n *node, ins, outs int) error {
	if len(n.in) < ins || len(n.out) != outs {
		return n.errorf("needs %d inputs and %d outputs, has %d and %d", ins, outs, len(n.in), len(n.out))
	}
	for i := 0; i < ins; i++ {
		if n.in[i] == nil {
			return n.errorf("input %d missing", i)
		}
	}
	return nil
}

func normAxis(n *node, axis, rank int) (int, error) {
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= max(rank, 1) {
		return 0, n.errorf("axis %d out of range for rank %d", axis, rank)
	}
	return axis, nil
}

func product(s []int) int {
	p := 1
	for _, d := range s {
		p *= d
	}
	return p
}

type reshape struct{}

func (k *reshape) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 1, 1); err != nil {
		return err
	}
	in, out := n.in[0], n.out[0]
	out.typ = in.typ
	var shape []int
	switch {
	case n.code.Builtin == OpReshape && len(n.in) > 1 && n.in[1] != nil:
		s, ok := constInts(n.in[1])
		if !ok {
			shape = append([]int(nil), out.decl.Shape...)
		} else {
			shape = s
		}
	case n.code.Builtin == OpReshape && len(n.op.OptInts(0)) > 0:
		shape = n.op.OptInts(0)
	default:
		shape = append([]int(nil), out.decl.Shape...)
	}
	elems := in.elems()
	unknown := -1
	p := 1
	for i, d := range shape {
		if d == -1 {
			if unknown >= 0 {
				return n.errorf("new shape %v has two -1", shape)
			}
			unknown = i
			continue
		}
		if d < 0 {
			return n.errorf("bad new shape %v", shape)
		}
		p *= d
	}
	if unknown >= 0 {
		if p == 0 || elems%p != 0 {
			return n.errorf("cannot reshape %v into %v", in.shape, shape)
		}
		shape[unknown] = elems / p
		p = elems
	}
	if p != elems && ip.batch > 1 && len(shape) > 0 && shape[0] == 1 && p*ip.batch == elems {
		shape[0] = ip.batch // the graph hard-codes batch 1
		p = elems
	}
	if p != elems {
		return n.errorf("cannot reshape %v (%d elements) into %v", in.shape, elems, shape)
	}
	out.shape = shape
	out.quant = keepQuant(out, in)
	return nil
}

// keepQuant: shape ops keep the input's quantization when the output has none.
func keepQuant(out, in *rtensor) *models.Quant {
	if out.quant == nil {
		return in.quant
	}
	return out.quant
}

func (k *reshape) eval(ip *Interpreter, n *node) error {
	copy(n.out[0].data, n.in[0].data)
	return nil
}

type concat struct {
	axis    int
	requant []bool
	// luts[i] is input i's requantization for every byte (8-bit types),
	// the same arithmetic as the element loop, done once at load.
	luts []*[256]byte
}

func (k *concat) prepare(ip *Interpreter, n *node) error {
	if len(n.in) < 1 || len(n.out) != 1 {
		return n.errorf("needs inputs and one output")
	}
	first := n.in[0]
	if first == nil {
		return n.errorf("input 0 missing")
	}
	rank := len(first.shape)
	axis, err := normAxis(n, int(n.op.OptInt(0, 0)), rank)
	if err != nil {
		return err
	}
	if act := n.op.OptByte(1, 0); act != actNone && first.typ != models.Float32 {
		return n.errorf("%w: fused activation on quantized concatenation", models.ErrUnsupported)
	}
	k.axis = axis
	shape := append([]int(nil), first.shape...)
	shape[axis] = 0
	k.requant = make([]bool, len(n.in))
	out := n.out[0]
	out.typ = first.typ
	for i, t := range n.in {
		if t == nil || len(t.shape) != rank || t.typ != first.typ {
			return n.errorf("input %d does not match input 0 (%s %v)", i, first.typ, first.shape)
		}
		for d := range t.shape {
			if d != axis && t.shape[d] != first.shape[d] {
				return n.errorf("input %d shape %v does not match %v off axis %d", i, t.shape, first.shape, axis)
			}
		}
		shape[axis] += t.shape[axis]
		if isQuantized(t) && isQuantized(out) && !sameQuant(t, out) {
			k.requant[i] = true
		}
	}
	out.shape = shape
	k.luts = make([]*[256]byte, len(n.in))
	for i, t := range n.in {
		if k.requant[i] && t.typ.Size() == 1 {
			k.luts[i] = new([256]byte)
			for b := range 256 {
				x := int32(b)
				if t.typ == models.Int8 {
					x = int32(int8(b))
				}
				k.luts[i][b] = byte(k.requantOne(t, out, x))
			}
		}
	}
	return nil
}

// requantOne is one element of a requantizing concatenation, as TFLite's
// reference kernel computes it in float.
func (k *concat) requantOne(t, out *rtensor, x int32) int32 {
	scale := float32(t.scale() / out.scale())
	bias := -float32(t.zp()) * scale
	lo, hi := qRange(out.typ)
	v := int32(math.Round(float64(float32(x)*scale+bias))) + out.zp()
	return clamp32(v, lo, hi)
}

func (k *concat) eval(ip *Interpreter, n *node) error {
	out := n.out[0]
	es := out.typ.Size()
	outer := product(out.shape[:k.axis])
	innerOut := product(out.shape[k.axis:]) * es
	off := 0
	for i, t := range n.in {
		chunk := product(t.shape[k.axis:]) * es
		if !k.requant[i] {
			copyRuns(out.data[off:], t.data, outer, chunk, innerOut, chunk)
		} else if lut := k.luts[i]; lut != nil {
			for o := 0; o < outer; o++ {
				kernel.LUT8(out.data[o*innerOut+off:][:chunk], t.data[o*chunk:][:chunk], lut)
			}
		} else {
			cnt := chunk / es
			for o := 0; o < outer; o++ {
				for j := 0; j < cnt; j++ {
					qput(out, (o*innerOut+off)/es+j, k.requantOne(t, out, qget(t, o*cnt+j)))
				}
			}
		}
		off += chunk
	}
	return nil
}

// strided copies: a general N-D gather of elements by start and step per dim.
type stridedView struct {
	start, step, count []int
	inStrides          []int
	idx                []int // the odometer of copy, reset when it ends
}

func rowStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// copy gathers the view of src into dst in order: runs along the last
// dimension (whole copies where it is contiguous), the next dimension's
// runs as one strided copyRuns, and an odometer with an incremental offset
// over the rest.
func (v *stridedView) copy(dst, src []byte, es int) {
	r := len(v.count)
	if r == 0 {
		copy(dst[:es], src[:es])
		return
	}
	total := product(v.count)
	if total == 0 {
		return
	}
	base, stride := 0, make([]int, r)
	for i := range r {
		base += v.start[i] * v.inStrides[i]
		stride[i] = v.step[i] * v.inStrides[i]
	}
	inner := v.count[r-1]
	if stride[r-1] != 1 {
		// Element by element along the last dimension.
		for o := 0; o < total; o += inner {
			for j := range inner {
				s := (base + j*stride[r-1]) * es
				copy(dst[(o+j)*es:][:es], src[s:s+es])
			}
			base = v.next(base, stride, r-1)
		}
		return
	}
	run := inner * es
	if r == 1 {
		copy(dst[:run], src[base*es:][:run])
		return
	}
	rows := v.count[r-2] // runs per copyRuns
	for o := 0; o < total; o += inner * rows {
		copyRuns(dst[o*es:], src[base*es:], rows, run, run, stride[r-2]*es)
		base = v.next(base, stride, r-2)
	}
}

// next steps the odometer over dimensions 0..d-1 (the index in v.idx),
// returning base moved by the dimensions' strides.
func (v *stridedView) next(base int, stride []int, d int) int {
	if v.idx == nil {
		v.idx = make([]int, len(v.count))
	}
	for i := d - 1; i >= 0; i-- {
		v.idx[i]++
		base += stride[i]
		if v.idx[i] < v.count[i] {
			return base
		}
		base -= v.count[i] * stride[i]
		v.idx[i] = 0
	}
	return base
}

// copyRuns copies n runs of run bytes, the i-th from src[i·ss:] to
// dst[i·ds:]; the channel slices of YOLO's blocks are runs of 1 to 64
// bytes, copied as fixed-size arrays (a copy call costs more than such a
// run). It stays on one thread: these copies are memory-bound, and a split
// did not measure faster on the shared machine (left to a quiet one).
func copyRuns(dst, src []byte, n, run, ds, ss int) {
	switch run {
	case 1: // a split or concat of single int8 channels
		for i := range n {
			dst[i*ds] = src[i*ss]
		}
	case 4:
		for i := range n {
			*(*[4]byte)(dst[i*ds:]) = *(*[4]byte)(src[i*ss:])
		}
	case 8:
		for i := range n {
			*(*[8]byte)(dst[i*ds:]) = *(*[8]byte)(src[i*ss:])
		}
	case 16:
		for i := range n {
			*(*[16]byte)(dst[i*ds:]) = *(*[16]byte)(src[i*ss:])
		}
	case 32:
		for i := range n {
			*(*[32]byte)(dst[i*ds:]) = *(*[32]byte)(src[i*ss:])
		}
	case 64:
		for i := range n {
			*(*[64]byte)(dst[i*ds:]) = *(*[64]byte)(src[i*ss:])
		}
	default:
		for i := range n {
			copy(dst[i*ds:][:run], src[i*ss:][:run])
		}
	}
}

type stridedSlice struct{ v stridedView }

func (k *stridedSlice) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 4, 1); err != nil {
		return err
	}
	in, out := n.in[0], n.out[0]
	begin, ok1 := constInts(n.in[1])
	end, ok2 := constInts(n.in[2])
	strides, ok3 := constInts(n.in[3])
	if !ok1 || !ok2 || !ok3 {
		return n.errorf("%w: non-constant begin/end/strides", models.ErrUnsupported)
	}
	if len(begin) != len(end) || len(begin) != len(strides) || len(begin) > len(in.shape) {
		return n.errorf("begin %v, end %v, strides %v do not fit input %v", begin, end, strides, in.shape)
	}
	bm, em := n.op.OptInt(0, 0), n.op.OptInt(1, 0)
	ellipsis, newAxis, shrink := n.op.OptInt(2, 0), n.op.OptInt(3, 0), n.op.OptInt(4, 0)
	offset := n.op.OptBool(5)
	if ellipsis != 0 || newAxis != 0 {
		return n.errorf("%w: ellipsis or new-axis masks", models.ErrUnsupported)
	}
	r := len(in.shape)
	v := stridedView{start: make([]int, r), step: make([]int, r), count: make([]int, r), inStrides: rowStrides(in.shape)}
	var shape []int
	for i := 0; i < r; i++ {
		dim := in.shape[i]
		if i >= len(begin) {
			v.start[i], v.step[i], v.count[i] = 0, 1, dim
			shape = append(shape, dim)
			continue
		}
		s := strides[i]
		if s == 0 {
			return n.errorf("stride 0 on axis %d", i)
		}
		b, e := begin[i], end[i]
		if offset {
			e = b + e
		}
		if b < 0 {
			b += dim
		}
		if e < 0 && !offset {
			e += dim
		}
		if shrink&(1<<i) != 0 {
			if b < 0 || b >= dim {
				return n.errorf("shrink index %d out of range on axis %d of %v", begin[i], i, in.shape)
			}
			v.start[i], v.step[i], v.count[i] = b, 1, 1
			continue
		}
		if s > 0 {
			if bm&(1<<i) != 0 {
				b = 0
			}
			if em&(1<<i) != 0 {
				e = dim
			}
			b, e = min(max(b, 0), dim), min(max(e, 0), dim)
		} else {
			if bm&(1<<i) != 0 {
				b = dim - 1
			}
			if em&(1<<i) != 0 {
				e = -1
			}
			b, e = min(max(b, -1), dim-1), min(max(e, -1), dim-1)
		}
		cnt := 0
		if s > 0 && e > b {
			cnt = (e - b + s - 1) / s
		} else if s < 0 && e < b {
			cnt = (b - e - s - 1) / -s
		}
		v.start[i], v.step[i], v.count[i] = b, s, cnt
		shape = append(shape, cnt)
	}
	k.v = v
	out.typ = in.typ
	out.shape = shape
	out.quant = keepQuant(out, in)
	return nil
}

func (k *stridedSlice) eval(ip *Interpreter, n *node) error {
	k.v.copy(n.out[0].data, n.in[0].data, n.in[0].typ.Size())
	return nil
}

type transpose struct {
	perm []int
	// batch, rows, cols: when the permutation, with size-1 dimensions
	// dropped and dimensions that stay together merged, swaps the last two
	// of at most three, the transpose is batch tiled 2-D transposes of
	// rows×cols (rows 0 when it is not).
	batch, rows, cols int
}

// asBatched2D finds batch, rows and cols of a transpose that is a batch of
// 2-D transposes (rows 0 when it is not one).
func asBatched2D(shape, perm []int) (batch, rows, cols int) {
	// Input dimensions of size > 1, in the order the output takes them.
	var order []int
	for _, p := range perm {
		if shape[p] > 1 {
			order = append(order, p)
		}
	}
	// Merge runs that are consecutive in the input too.
	type group struct{ first, size int }
	var groups []group
	for i, p := range order {
		if i > 0 && p == order[i-1]+nextKept(shape, order[i-1]) {
			groups[len(groups)-1].size *= shape[p]
			continue
		}
		groups = append(groups, group{first: p, size: shape[p]})
	}
	switch {
	case len(groups) == 2 && groups[0].first > groups[1].first:
		return 1, groups[1].size, groups[0].size
	case len(groups) == 3 && groups[0].first < groups[1].first && groups[1].first > groups[2].first && groups[0].first < groups[2].first:
		return groups[0].size, groups[2].size, groups[1].size
	}
	return 0, 0, 0
}

// nextKept is the distance from input dimension p to the next one of size
// > 1 (size-1 dimensions in between do not separate two dimensions).
func nextKept(shape []int, p int) int {
	d := 1
	for p+d < len(shape) && shape[p+d] == 1 {
		d++
	}
	return d
}

func (k *transpose) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 2, 1); err != nil {
		return err
	}
	in, out := n.in[0], n.out[0]
	perm, ok := constInts(n.in[1])
	if !ok {
		return n.errorf("%w: non-constant permutation", models.ErrUnsupported)
	}
	if len(perm) != len(in.shape) {
		return n.errorf("permutation %v for rank %d", perm, len(in.shape))
	}
	seen := make([]bool, len(perm))
	shape := make([]int, len(perm))
	for i, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] {
			return n.errorf("bad permutation %v", perm)
		}
		seen[p] = true
		shape[i] = in.shape[p]
	}
	k.perm = perm
	k.batch, k.rows, k.cols = asBatched2D(in.shape, perm)
	out.typ = in.typ
	out.shape = shape
	out.quant = keepQuant(out, in)
	return nil
}

func (k *transpose) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	es := in.typ.Size()
	ist := rowStrides(in.shape)
	r := len(k.perm)
	if r == 0 {
		copy(out.data, in.data)
		return nil
	}
	if k.rows > 0 && k.batch*k.rows*k.cols == in.elems() {
		m := k.rows * k.cols
		switch es {
		case 1:
			for b := range k.batch {
				kernel.TransposeBytes(out.data[b*m:], in.data[b*m:], k.rows, k.cols)
			}
			return nil
		case 4:
			x, y := i32s(in.data), i32s(out.data)
			for b := range k.batch {
				kernel.Transpose32(y[b*m:], x[b*m:], k.rows, k.cols)
			}
			return nil
		}
	}
	v := stridedView{start: make([]int, r), step: make([]int, r), count: out.shape, inStrides: make([]int, r)}
	for i, p := range k.perm {
		v.step[i] = 1
		v.inStrides[i] = ist[p]
	}
	// The general copy treats inStrides per output dim; the innermost output
	// dim maps to a strided input dim unless perm keeps it last.
	if es == 1 && r >= 2 && k.perm[r-1] != r-1 {
		transposeBytes(out.data, in.data, out.shape, v.inStrides)
		return nil
	}
	v.copy(out.data, in.data, es)
	return nil
}

// transposeBytes is the common int8 case: walk the output in order.
func transposeBytes(dst, src []byte, oshape, istr []int) {
	r := len(oshape)
	idx := make([]int, r)
	inner := oshape[r-1]
	step := istr[r-1]
	total := product(oshape)
	for o := 0; o < total; o += inner {
		base := 0
		for i := 0; i < r-1; i++ {
			base += idx[i] * istr[i]
		}
		d := dst[o : o+inner]
		for j := range d {
			d[j] = src[base+j*step]
		}
		for i := r - 2; i >= 0; i-- {
			idx[i]++
			if idx[i] < oshape[i] {
				break
			}
			idx[i] = 0
		}
	}
}

type split struct{ axis int }

func (k *split) prepare(ip *Interpreter, n *node) error {
	if len(n.in) < 2 || n.in[0] == nil || n.in[1] == nil || len(n.out) == 0 {
		return n.errorf("needs axis and input, and outputs")
	}
	ax, ok := constInts(n.in[0])
	if !ok || len(ax) != 1 {
		return n.errorf("%w: non-constant split axis", models.ErrUnsupported)
	}
	in := n.in[1]
	axis, err := normAxis(n, ax[0], len(in.shape))
	if err != nil {
		return err
	}
	ns := len(n.out)
	if in.shape[axis]%ns != 0 {
		return n.errorf("axis %d of %v does not split in %d", axis, in.shape, ns)
	}
	k.axis = axis
	for _, o := range n.out {
		o.typ = in.typ
		o.shape = append([]int(nil), in.shape...)
		o.shape[axis] /= ns
		o.quant = keepQuant(o, in)
	}
	return nil
}

func (k *split) eval(ip *Interpreter, n *node) error {
	in := n.in[1]
	es := in.typ.Size()
	outer := product(in.shape[:k.axis])
	inner := product(in.shape[k.axis:]) * es
	chunk := inner / len(n.out)
	for i, o := range n.out {
		copyRuns(o.data, in.data[i*chunk:], outer, chunk, chunk, inner)
	}
	return nil
}

type pack struct{ axis int }

func (k *pack) prepare(ip *Interpreter, n *node) error {
	if len(n.in) == 0 || len(n.out) != 1 || n.in[0] == nil {
		return n.errorf("needs inputs and one output")
	}
	first := n.in[0]
	axis := int(n.op.OptInt(1, 0))
	if axis < 0 {
		axis += len(first.shape) + 1
	}
	if axis < 0 || axis > len(first.shape) {
		return n.errorf("axis %d out of range", axis)
	}
	for i, t := range n.in {
		if t == nil || !sameShape(t.shape, first.shape) || t.typ != first.typ {
			return n.errorf("input %d does not match input 0", i)
		}
	}
	k.axis = axis
	out := n.out[0]
	out.typ = first.typ
	out.shape = append(append(append([]int(nil), first.shape[:axis]...), len(n.in)), first.shape[axis:]...)
	out.quant = keepQuant(out, first)
	return nil
}

func (k *pack) eval(ip *Interpreter, n *node) error {
	first := n.in[0]
	es := first.typ.Size()
	outer := product(first.shape[:k.axis])
	chunk := product(first.shape[k.axis:]) * es
	for i, t := range n.in {
		copyRuns(n.out[0].data[i*chunk:], t.data, outer, chunk, len(n.in)*chunk, chunk)
	}
	return nil
}

type pad struct {
	v2     bool
	before []int
	fill   []byte
	// fillBuf is fill repeated (4 KiB), zero whether fill is all zeros.
	fillBuf []byte
	zero    bool
}

func (k *pad) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 2, 1); err != nil {
		return err
	}
	in, out := n.in[0], n.out[0]
	p, ok := constInts(n.in[1])
	if !ok {
		return n.errorf("%w: non-constant paddings", models.ErrUnsupported)
	}
	r := len(in.shape)
	if len(p) != 2*r {
		return n.errorf("paddings of %d values for rank %d", len(p), r)
	}
	out.typ = in.typ
	out.quant = keepQuant(out, in)
	out.shape = make([]int, r)
	k.before = make([]int, r)
	for i := 0; i < r; i++ {
		if p[2*i] < 0 || p[2*i+1] < 0 || p[2*i] > 1<<16 || p[2*i+1] > 1<<16 {
			return n.errorf("bad padding %v", p)
		}
		k.before[i] = p[2*i]
		out.shape[i] = in.shape[i] + p[2*i] + p[2*i+1]
	}
	es := in.typ.Size()
	if es == 0 {
		return n.errorf("%w: PAD of %s", models.ErrUnsupported, in.typ)
	}
	k.fill = make([]byte, es)
	if k.v2 && len(n.in) > 2 && n.in[2] != nil {
		if !n.in[2].konst || len(n.in[2].data) != es {
			return n.errorf("%w: non-constant or mis-typed pad value", models.ErrUnsupported)
		}
		copy(k.fill, n.in[2].data)
	} else if isQuantized(out) {
		qv := out.zp()
		for i := range k.fill {
			k.fill[i] = byte(qv >> (8 * i))
		}
	}
	k.zero = true
	for _, b := range k.fill {
		k.zero = k.zero && b == 0
	}
	k.fillBuf = make([]byte, 4096/es*es)
	for i := 0; i < len(k.fillBuf); i += es {
		copy(k.fillBuf[i:], k.fill)
	}
	return nil
}

func (k *pad) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	es := in.typ.Size()
	r := len(in.shape)
	if r == 0 || in.elems() == 0 {
		k.fillBytes(out.data)
		copy(out.data, in.data)
		return nil
	}
	// Dimensions from p on are not padded: blocks of them are contiguous
	// in both tensors.
	p := r - 1
	for p > 0 && k.before[p] == 0 && out.shape[p] == in.shape[p] {
		p--
	}
	ist, ost := rowStrides(in.shape), rowStrides(out.shape)
	for i := range ist {
		ist[i] *= es
		ost[i] *= es
	}
	k.padDim(out.data, in.data, 0, p, in.shape, ist, ost)
	return nil
}

// padDim writes dst, one slice of the output along dimension d (or the
// whole output at d = 0): the fill before, each input slice (recursively;
// a whole block at dimension p, below which nothing is padded), the fill
// after, so that every output byte is written once.
func (k *pad) padDim(dst, src []byte, d, p int, shape, ist, ost []int) {
	b, n := k.before[d]*ost[d], shape[d]*ost[d]
	k.fillBytes(dst[:b])
	if d == p {
		copy(dst[b:b+n], src[:n])
	} else {
		for i := range shape[d] {
			k.padDim(dst[b+i*ost[d]:][:ost[d]], src[i*ist[d]:], d+1, p, shape, ist, ost)
		}
	}
	k.fillBytes(dst[b+n:])
}

// fillBytes sets x (whole elements) to the pad value: a clear when it is
// zero, else copies of the value repeated in fillBuf.
func (k *pad) fillBytes(x []byte) {
	if k.zero {
		clear(x)
		return
	}
	for len(x) > 0 {
		x = x[copy(x, k.fillBuf):]
	}
}

type tile struct{ mult []int }

func (k *tile) prepare(ip *Interpreter, n *node) error {
	if err := needIO(n, 2, 1); err != nil {
		return err
	}
	in, out := n.in[0], n.out[0]
	m, ok := constInts(n.in[1])
	if !ok || len(m) != len(in.shape) {
		return n.errorf("%w: multiples must be constant, one per dimension", models.ErrUnsupported)
	}
	out.typ = in.typ
	out.quant = keepQuant(out, in)
	out.shape = make([]int, len(m))
	for i, x := range m {
		if x < 0 || x > 1<<16 {
			return n.errorf("bad multiple %d", x)
		}
		out.shape[i] = in.shape[i] * x
	}
	k.mult = m
	return nil
}

func (k *tile) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	if out.elems() == 0 {
		return nil
	}
	tileDim(out.data, in.data, in.shape, k.mult, in.typ.Size())
	return nil
}

// tileDim writes into out the tiling of in (shape, the multiples mult, es
// bytes an element) from its leading dimension on, as TFLite's
// TileOneDimension: each sub-block of the input is tiled on the dimensions
// after, then the block just written is repeated mult[0] times by whole
// copies. It returns the bytes of in read and of out written.
func tileDim(out, in []byte, shape, mult []int, es int) (read, written int) {
	if len(shape) == 0 {
		return es, copy(out, in[:es])
	}
	if len(shape) == 1 {
		read = shape[0] * es
		copy(out, in[:read])
		written = read
	} else {
		for range shape[0] {
			r, w := tileDim(out[written:], in[read:], shape[1:], mult[1:], es)
			read, written = read+r, written+w
		}
	}
	total := written * mult[0]
	for written < total { // doubling copies of the block
		written += copy(out[written:total], out[:written])
	}
	return read, total
}

var _ = fmt.Sprint
