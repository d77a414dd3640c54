package tflite

import (
	"math"

	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

func init() {
	register(OpAdd, func() opKernel { return &binaryOp{kind: OpAdd} })
	register(OpSub, func() opKernel { return &binaryOp{kind: OpSub} })
	register(OpMul, func() opKernel { return &binaryOp{kind: OpMul} })
	register(OpDiv, func() opKernel { return &binaryOp{kind: OpDiv} })
	register(OpMaximum, func() opKernel { return &binaryOp{kind: OpMaximum} })
	register(OpMinimum, func() opKernel { return &binaryOp{kind: OpMinimum} })
	register(OpFloorMod, func() opKernel { return &binaryOp{kind: OpFloorMod} })
	register(OpLess, func() opKernel { return &binaryOp{kind: OpLess} })
	register(OpGreater, func() opKernel { return &binaryOp{kind: OpGreater} })
	register(OpEqual, func() opKernel { return &binaryOp{kind: OpEqual} })
}

// bcast maps output indices to the indices of two broadcast inputs (numpy
// rules), iterating the innermost dimension in a tight loop.
type bcast struct {
	out    []int
	sa, sb []int // per output dim; 0 where the input is broadcast
	same   bool
	// runs, ra and rb are out, sa and sb with dimensions of size 1 dropped
	// and neighbours that both inputs step through alike merged, so the
	// innermost run is as long as it can be (a [100 2 100 1] tensor times
	// a scalar is one run, not 20000).
	runs, ra, rb []int
}

func newBcast(a, b []int) (bcast, bool) {
	r := max(len(a), len(b))
	bc := bcast{out: make([]int, r), sa: make([]int, r), sb: make([]int, r), same: sameShape(a, b)}
	dim := func(s []int, i int) int {
		j := i - (r - len(s))
		if j < 0 {
			return 1
		}
		return s[j]
	}
	for i := 0; i < r; i++ {
		da, db := dim(a, i), dim(b, i)
		switch {
		case da == db:
			bc.out[i] = da
		case da == 1:
			bc.out[i] = db
		case db == 1:
			bc.out[i] = da
		default:
			return bc, false
		}
	}
	strides := func(s []int, dst []int) {
		st := 1
		for i := r - 1; i >= 0; i-- {
			d := dim(s, i)
			if d == 1 {
				dst[i] = 0
			} else {
				dst[i] = st
			}
			st *= d
		}
	}
	strides(a, bc.sa)
	strides(b, bc.sb)
	bc.coalesce()
	return bc, true
}

// coalesce sets runs, ra and rb from out, sa and sb.
func (bc *bcast) coalesce() {
	bc.runs, bc.ra, bc.rb = nil, nil, nil
	for i, d := range bc.out {
		if d == 1 {
			continue
		}
		if j := len(bc.runs) - 1; j >= 0 && bc.ra[j] == bc.sa[i]*d && bc.rb[j] == bc.sb[i]*d {
			bc.runs[j] *= d
			bc.ra[j], bc.rb[j] = bc.sa[i], bc.sb[i]
			continue
		}
		bc.runs = append(bc.runs, d)
		bc.ra = append(bc.ra, bc.sa[i])
		bc.rb = append(bc.rb, bc.sb[i])
	}
}

// each calls fn for runs of the innermost dimension: output offset o, input
// offsets ia and ib, their steps (0 or 1), and the run length.
func (bc *bcast) each(fn func(o, ia, ib, stepA, stepB, n int)) {
	r := len(bc.runs)
	total := 1
	for _, d := range bc.runs {
		total *= d
	}
	if bc.same || r == 0 {
		fn(0, 0, 0, 1, 1, total)
		return
	}
	inner := bc.runs[r-1]
	if inner == 0 || total == 0 {
		return
	}
	idx := make([]int, r)
	for o := 0; o < total; o += inner {
		ia, ib := 0, 0
		for i := 0; i < r-1; i++ {
			ia += idx[i] * bc.ra[i]
			ib += idx[i] * bc.rb[i]
		}
		fn(o, ia, ib, bc.ra[r-1], bc.rb[r-1], inner)
		for i := r - 2; i >= 0; i-- {
			idx[i]++
			if idx[i] < bc.runs[i] {
				break
			}
			idx[i] = 0
		}
	}
}

type binaryOp struct {
	kind BuiltinOp
	bc   bcast
	act  uint8
	// quantized ADD/SUB
	leftShift          int
	m1, m2, mo         int32
	s1, s2, so         int
	z1, z2, zo, lo, hi int32
	flo, fhi           float32
	// lut holds the exact result for every pair of quantized input bytes
	// (x<<8 | y): 64 KiB per operator (and kernel.LUT8x2's padding), one
	// load per element at run time.
	lut []byte
}

func (k *binaryOp) prepare(ip *Interpreter, n *node) error {
	if len(n.in) != 2 || len(n.out) != 1 || n.in[0] == nil || n.in[1] == nil {
		return n.errorf("needs two inputs and one output")
	}
	a, b, out := n.in[0], n.in[1], n.out[0]
	if a.typ != b.typ {
		return n.errorf("%w: mixed input types %s and %s", models.ErrUnsupported, a.typ, b.typ)
	}
	bc, ok := newBcast(a.shape, b.shape)
	if !ok {
		return n.errorf("shapes %v and %v do not broadcast", a.shape, b.shape)
	}
	k.bc = bc
	out.shape = append([]int(nil), bc.out...)
	switch k.kind {
	case OpAdd, OpSub, OpMul, OpDiv:
		k.act = n.op.OptByte(0, 0)
	}
	switch k.kind {
	case OpLess, OpGreater, OpEqual:
		out.typ = models.Bool
	default:
		out.typ = a.typ
	}
	switch a.typ {
	case models.Float32:
		k.flo, k.fhi = actFloat(k.act)
		return nil
	case models.Int32, models.Int64:
		return nil
	case models.Int8, models.UInt8:
		if k.kind == OpLess || k.kind == OpGreater || k.kind == OpEqual || k.kind == OpMaximum || k.kind == OpMinimum {
			if !sameQuant(a, b) {
				return n.errorf("%w: quantized comparison with different scales", models.ErrUnsupported)
			}
			return nil
		}
		if !isQuantized(a) || !isQuantized(b) || !isQuantized(out) {
			return n.errorf("quantized %s without quantization parameters", a.typ)
		}
		k.z1, k.z2, k.zo = a.zp(), b.zp(), out.zp()
		k.lo, k.hi = actRange(k.act, out)
		switch k.kind {
		case OpAdd, OpSub:
			k.leftShift = 20
			twiceMax := 2 * math.Max(a.scale(), b.scale())
			k.m1, k.s1 = quantizeMultiplier(a.scale() / twiceMax)
			k.m2, k.s2 = quantizeMultiplier(b.scale() / twiceMax)
			k.mo, k.so = quantizeMultiplier(twiceMax / (float64(int(1)<<k.leftShift) * out.scale()))
			k.buildLUT(a.typ == models.Int8)
			return nil
		case OpMul:
			k.mo, k.so = quantizeMultiplier(a.scale() * b.scale() / out.scale())
			k.buildLUT(a.typ == models.Int8)
			return nil
		}
	}
	return n.errorf("%w: %s on %s", models.ErrUnsupported, k.kind, a.typ)
}

func sameQuant(a, b *rtensor) bool {
	return a.scale() == b.scale() && a.zp() == b.zp()
}

func (k *binaryOp) eval(ip *Interpreter, n *node) error {
	a, b, out := n.in[0], n.in[1], n.out[0]
	switch a.typ {
	case models.Float32:
		if op, ok := arithOp(k.kind); ok && k.bc.same {
			cnt := out.elems()
			x, y, o := f32s(a.data)[:cnt], f32s(b.data)[:cnt], f32s(out.data)[:cnt]
			ip.parallelVec(cnt, func(lo, hi int) { kernel.ArithF32(op, o[lo:hi], x[lo:hi], y[lo:hi], k.flo, k.fhi) })
			return nil
		}
		k.evalF32(f32s(a.data), f32s(b.data), out)
	case models.Int32:
		evalInt(k, i32s(a.data), i32s(b.data), out)
	case models.Int64:
		evalInt(k, i64s(a.data), i64s(b.data), out)
	case models.Int8, models.UInt8:
		if k.lut != nil && k.scalarQ(ip, a, b, out) {
			return nil
		}
		if k.lut != nil && k.bc.same && len(out.data) >= 1<<15 {
			// Large same-shape tensors: split the table lookups over workers.
			lut := (*[kernel.PairTableLen]byte)(k.lut)
			x, y, o := a.data, b.data, out.data
			ip.parallel(len(o), 1<<14, func(_, lo, hi int) { kernel.LUT8x2(o[lo:hi], x[lo:hi], y[lo:hi], lut) })
			return nil
		}
		k.evalQ(a, b, out)
	}
	return nil
}

// lookup8 sets dst[i] = t[src[i]] (kernel.LUT8), split over the workers only
// for tensors large enough to pay for waking them: the lookup runs at
// memory speed, tens of microseconds for the largest YOLO activations.
func (ip *Interpreter) lookup8(dst, src []byte, t *[256]byte) {
	ip.parallel(len(src), 1<<18, func(_, lo, hi int) { kernel.LUT8(dst[lo:hi], src[lo:hi], t) })
}

// scalarQ runs a quantized ADD, SUB or MUL whose other input is one value
// (a scaled attention score, a box times its stride) as a lookup in one row
// of the pair table: one byte per byte at memory speed. False when neither
// input is a single value.
func (k *binaryOp) scalarQ(ip *Interpreter, a, b, out *rtensor) bool {
	var row [256]byte
	switch cnt := out.elems(); {
	case b.elems() == 1 && a.elems() == cnt:
		for x := range 256 {
			row[x] = k.lut[x<<8|int(b.data[0])]
		}
		ip.lookup8(out.data[:cnt], a.data[:cnt], &row)
	case a.elems() == 1 && b.elems() == cnt:
		for y := range 256 {
			row[y] = k.lut[int(a.data[0])<<8|y]
		}
		ip.lookup8(out.data[:cnt], b.data[:cnt], &row)
	default:
		return false
	}
	return true
}

// arithOp is the kernel.ArithF32 operation of a float operator, false for
// those it does not run.
func arithOp(op BuiltinOp) (kernel.Arith, bool) {
	switch op {
	case OpAdd:
		return kernel.ArithAdd, true
	case OpSub:
		return kernel.ArithSub, true
	case OpMul:
		return kernel.ArithMul, true
	}
	return 0, false
}

// arithF32 is the contiguous run of a float ADD, SUB or MUL with its
// activation clamp (kernel.ArithF32: the same arithmetic as the general
// loop); false for other operators.
func arithF32(op BuiltinOp, o, x, y []float32, lo, hi float32) bool {
	a, ok := arithOp(op)
	if ok {
		kernel.ArithF32(a, o[:len(x)], x, y[:len(x)], lo, hi)
	}
	return ok
}

// arithF32Scalar is arithF32 with one operand a single value v: o = x op v,
// or v op x when vFirst.
func arithF32Scalar(op BuiltinOp, o, x []float32, v float32, vFirst bool, lo, hi float32) bool {
	a, ok := arithOp(op)
	if !ok {
		return false
	}
	if vFirst && a == kernel.ArithSub {
		a = kernel.ArithSubFrom
	}
	kernel.ArithF32(a, o[:len(x)], x, []float32{v}, lo, hi)
	return true
}

func (k *binaryOp) evalF32(x, y []float32, out *rtensor) {
	var o []float32
	var ob []byte
	if out.typ == models.Bool {
		ob = out.data
	} else {
		o = f32s(out.data)
	}
	lo, hi := k.flo, k.fhi
	k.bc.each(func(oi, ia, ib, sa, sb, n int) {
		if sa == 1 && sb == 1 && o != nil && arithF32(k.kind, o[oi:oi+n], x[ia:ia+n], y[ib:ib+n], lo, hi) {
			return
		}
		if sa == 1 && sb == 0 && o != nil && arithF32Scalar(k.kind, o[oi:oi+n], x[ia:ia+n], y[ib], false, lo, hi) {
			return
		}
		if sa == 0 && sb == 1 && o != nil && arithF32Scalar(k.kind, o[oi:oi+n], y[ib:ib+n], x[ia], true, lo, hi) {
			return
		}
		for j := 0; j < n; j++ {
			u, v := x[ia+j*sa], y[ib+j*sb]
			var r float32
			switch k.kind {
			case OpAdd:
				r = u + v
			case OpSub:
				r = u - v
			case OpMul:
				r = u * v
			case OpDiv:
				r = u / v
			case OpMaximum:
				r = max(u, v)
			case OpMinimum:
				r = min(u, v)
			case OpFloorMod:
				m := float32(math.Mod(float64(u), float64(v)))
				if m != 0 && (m < 0) != (v < 0) {
					m += v
				}
				r = m
			case OpLess:
				ob[oi+j] = b2u(u < v)
				continue
			case OpGreater:
				ob[oi+j] = b2u(u > v)
				continue
			case OpEqual:
				ob[oi+j] = b2u(u == v)
				continue
			}
			if r < lo {
				r = lo
			} else if r > hi {
				r = hi
			}
			o[oi+j] = r
		}
	})
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func evalInt[T int32 | int64](k *binaryOp, x, y []T, out *rtensor) {
	var o []T
	if out.typ != models.Bool {
		switch any(x).(type) {
		case []int32:
			o = any(i32s(out.data)).([]T)
		default:
			o = any(i64s(out.data)).([]T)
		}
	}
	k.bc.each(func(oi, ia, ib, sa, sb, n int) {
		for j := 0; j < n; j++ {
			u, v := x[ia+j*sa], y[ib+j*sb]
			switch k.kind {
			case OpAdd:
				o[oi+j] = u + v
			case OpSub:
				o[oi+j] = u - v
			case OpMul:
				o[oi+j] = u * v
			case OpDiv:
				if v == 0 {
					o[oi+j] = 0
				} else {
					o[oi+j] = u / v
				}
			case OpMaximum:
				o[oi+j] = max(u, v)
			case OpMinimum:
				o[oi+j] = min(u, v)
			case OpFloorMod:
				if v == 0 {
					o[oi+j] = 0
					continue
				}
				m := u % v
				if m != 0 && (m < 0) != (v < 0) {
					m += v
				}
				o[oi+j] = m
			case OpLess:
				out.data[oi+j] = b2u(u < v)
			case OpGreater:
				out.data[oi+j] = b2u(u > v)
			case OpEqual:
				out.data[oi+j] = b2u(u == v)
			}
		}
	})
}

// quantOne is the exact TFLite integer arithmetic for one pair of inputs.
func (k *binaryOp) quantOne(x, y int32) int32 {
	var r int32
	switch k.kind {
	case OpAdd, OpSub:
		s1 := mbqm((x-k.z1)*(1<<k.leftShift), k.m1, k.s1)
		s2 := mbqm((y-k.z2)*(1<<k.leftShift), k.m2, k.s2)
		raw := s1 + s2
		if k.kind == OpSub {
			raw = s1 - s2
		}
		r = mbqm(raw, k.mo, k.so) + k.zo
	case OpMul:
		r = mbqm((x-k.z1)*(y-k.z2), k.mo, k.so) + k.zo
	}
	return clamp32(r, k.lo, k.hi)
}

func (k *binaryOp) buildLUT(signed bool) {
	k.lut = make([]byte, kernel.PairTableLen)
	for i := 0; i < 1<<16; i++ {
		x, y := int32(i>>8), int32(i&0xff)
		if signed {
			x, y = int32(int8(x)), int32(int8(y))
		}
		k.lut[i] = byte(k.quantOne(x, y))
	}
}

func (k *binaryOp) evalQ(a, b, out *rtensor) {
	if k.lut != nil {
		x, y, o, lut := a.data, b.data, out.data, (*[kernel.PairTableLen]byte)(k.lut)
		k.bc.each(func(oi, ia, ib, sa, sb, n int) {
			if sa == 1 && sb == 1 {
				kernel.LUT8x2(o[oi:oi+n], x[ia:ia+n], y[ib:ib+n], lut)
				return
			}
			for j := 0; j < n; j++ {
				o[oi+j] = lut[int(x[ia+j*sa])<<8|int(y[ib+j*sb])]
			}
		})
		return
	}
	signed := a.typ == models.Int8
	get := func(t []byte, i int) int32 {
		if signed {
			return int32(int8(t[i]))
		}
		return int32(t[i])
	}
	// Quantized ADD/SUB/MUL always have a table (quantOne builds it); what
	// is left are comparisons and min/max on equal quantization.
	x, y, o := a.data, b.data, out.data
	switch k.kind {
	default: // comparisons and min/max on equal quantization
		k.bc.each(func(oi, ia, ib, sa, sb, n int) {
			for j := 0; j < n; j++ {
				u, v := get(x, ia+j*sa), get(y, ib+j*sb)
				switch k.kind {
				case OpLess:
					o[oi+j] = b2u(u < v)
				case OpGreater:
					o[oi+j] = b2u(u > v)
				case OpEqual:
					o[oi+j] = b2u(u == v)
				case OpMaximum:
					o[oi+j] = byte(max(u, v))
				case OpMinimum:
					o[oi+j] = byte(min(u, v))
				}
			}
		})
	}
}
