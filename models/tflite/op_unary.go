package tflite

import (
	"math"

	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

func init() {
	act := func(op BuiltinOp, f func(float32) float32) {
		register(op, func() opKernel { return &unary{kind: op, f: f} })
	}
	act(OpLogistic, func(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) })
	act(OpTanh, func(x float32) float32 { return float32(math.Tanh(float64(x))) })
	act(OpRelu, func(x float32) float32 { return max(x, 0) })
	act(OpRelu6, func(x float32) float32 { return min(max(x, 0), 6) })
	act(OpHardSwish, func(x float32) float32 { return x * min(max(x+3, 0), 6) / 6 })
	act(OpExp, func(x float32) float32 { return float32(math.Exp(float64(x))) })
	act(OpNeg, func(x float32) float32 { return -x })
	act(OpAbs, func(x float32) float32 { return float32(math.Abs(float64(x))) })
	act(OpSqrt, func(x float32) float32 { return float32(math.Sqrt(float64(x))) })
	act(OpCos, func(x float32) float32 { return float32(math.Cos(float64(x))) })
	act(OpSin, func(x float32) float32 { return float32(math.Sin(float64(x))) })
	act(OpFloor, func(x float32) float32 { return float32(math.Floor(float64(x))) })
	register(OpLeakyRelu, func() opKernel { return &unary{kind: OpLeakyRelu} })
	register(OpSoftmax, func() opKernel { return &softmax{} })
	register(OpQuantize, func() opKernel { return &quantize{} })
	register(OpDequantize, func() opKernel { return &dequantize{} })
	register(OpCast, func() opKernel { return &cast{} })
}

// unary applies a float function elementwise; quantized tensors go through
// a 256-entry table computed in float, as TFLite's optimized kernels do.
type unary struct {
	kind  BuiltinOp
	f     func(float32) float32
	table [256]byte
}

func (k *unary) prepare(ip *Interpreter, n *node) error {
	if len(n.in) < 1 || len(n.out) != 1 || n.in[0] == nil {
		return n.errorf("needs one input and one output")
	}
	in, out := n.in[0], n.out[0]
	out.shape = append([]int(nil), in.shape...)
	out.typ = in.typ
	if k.kind == OpLeakyRelu {
		alpha := n.op.OptFloat(0, 0.2)
		k.f = func(x float32) float32 {
			if x < 0 {
				return alpha * x
			}
			return x
		}
	}
	switch in.typ {
	case models.Float32:
		return nil
	case models.Int8, models.UInt8:
		if !isQuantized(in) || !isQuantized(out) {
			return n.errorf("quantized %s without quantization parameters", in.typ)
		}
		lo, hi := qRange(in.typ)
		is, iz := float32(in.scale()), in.zp()
		inv := 1 / float32(out.scale())
		oz := out.zp()
		for v := lo; v <= hi; v++ {
			x := is * float32(v-iz)
			r := float32(math.Round(float64(k.f(x) * inv)))
			q := clamp32(int32(r)+oz, lo, hi)
			k.table[byte(v)] = byte(q)
		}
		return nil
	}
	return n.errorf("%w: %s on %s", models.ErrUnsupported, n.code.Name(), in.typ)
}

func (k *unary) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	if in.typ == models.Float32 && k.kind == OpLogistic {
		x, y := f32s(in.data), f32s(out.data)
		ip.parallelVec(len(x), func(lo, hi int) { kernel.Sigmoid(y[lo:hi], x[lo:hi]) })
		return nil
	}
	if in.typ == models.Float32 {
		x, y := f32s(in.data), f32s(out.data)
		ip.parallel(len(x), 16384, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				y[i] = k.f(x[i])
			}
		})
		return nil
	}
	ip.lookup8(out.data, in.data, &k.table)
	return nil
}

type softmax struct {
	beta  float64
	inner int
	// table[255-v] = exp(-scale·beta·v) for quantized inputs, made at load
	table [256]float32
}

func (k *softmax) prepare(ip *Interpreter, n *node) error {
	if len(n.in) < 1 || len(n.out) != 1 || n.in[0] == nil {
		return n.errorf("needs one input and one output")
	}
	in, out := n.in[0], n.out[0]
	if len(in.shape) == 0 {
		return n.errorf("scalar input")
	}
	out.shape = append([]int(nil), in.shape...)
	out.typ = in.typ
	k.beta = float64(n.op.OptFloat(0, 1))
	k.inner = in.shape[len(in.shape)-1]
	switch in.typ {
	case models.Float32:
	case models.Int8, models.UInt8:
		if !isQuantized(in) || !isQuantized(out) {
			return n.errorf("quantized softmax without quantization parameters")
		}
		sc := float32(-in.scale() * k.beta)
		for v := 0; v < 256; v++ {
			k.table[255-v] = float32(math.Exp(float64(sc * float32(v))))
		}
		if in.typ == models.Int8 && out.typ == models.Int8 {
			ip.needScratch(16 * k.inner * 4) // a block's table values (kernel.SoftmaxInt8)
		}
	default:
		return n.errorf("%w: softmax on %s", models.ErrUnsupported, in.typ)
	}
	return nil
}

func (k *softmax) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	d := k.inner
	if d == 0 {
		return nil
	}
	rows := in.elems() / d
	if in.typ == models.Float32 {
		// (x - row max)·beta for a block of rows, one vector exponential
		// over the block (kernel.Exp), then each row's sum and scale.
		// Blocks are whole groups of u rows, u·d a multiple of 16:
		// kernel.Exp runs a block's last len%16 elements in plain Go,
		// which may differ from its vector path in the last bit, and
		// those are then the tensor's last elements on any thread count.
		x, y := f32s(in.data), f32s(out.data)
		beta := float32(k.beta)
		u := 16 / gcd(d, 16)
		ip.parallel((rows+u-1)/u, max(1, 64/u), func(_, g0, g1 int) {
			r0, r1 := g0*u, min(g1*u, rows)
			block := y[r0*d : r1*d]
			kernel.SoftmaxF32Prep(block, x[r0*d:r1*d], d, beta)
			kernel.Exp(block, block)
			kernel.SoftmaxF32Norm(block, d)
		})
		return nil
	}
	// Quantized: TFLite's optimized kernel in float32 arithmetic: a table of
	// exp(-scale·beta·(max - q)), a float32 sum, then round(p/scale) + zp.
	table := &k.table
	lo, hi := qRange(out.typ)
	oscale := float32(out.scale())
	oz := out.zp()
	if in.typ == models.Int8 && out.typ == models.Int8 {
		// Blocks of 16 rows: the kernel's vector width across rows.
		x, y := i8s(in.data), i8s(out.data)
		ip.parallel((rows+15)/16, 4, func(w, b0, b1 int) {
			r0, r1 := b0*16*d, min(b1*16, rows)*d
			kernel.SoftmaxInt8(y[r0:r1], x[r0:r1], d, table, oscale, oz, lo, hi, f32s(ip.scratch[w]))
		})
		return nil
	}
	for r := 0; r < rows; r++ {
		var mx int32 = math.MinInt32
		for i := 0; i < d; i++ {
			mx = max(mx, qget(in, r*d+i))
		}
		off := 255 - mx
		var sum float32
		for i := 0; i < d; i++ {
			sum += table[off+qget(in, r*d+i)]
		}
		inv := 1 / (sum * oscale)
		for i := 0; i < d; i++ {
			p := table[off+qget(in, r*d+i)] * inv
			qput(out, r*d+i, clamp32(int32(math.Round(float64(p)))+oz, lo, hi))
		}
	}
	return nil
}

// quantize converts float to quantized, or requantizes between scales.
type quantize struct {
	q     int32
	shift int
	// lut is the output byte for every input byte when both are 8-bit: the
	// same arithmetic, done once per value at load.
	lut *[256]byte
}

func (k *quantize) prepare(ip *Interpreter, n *node) error {
	if len(n.in) < 1 || len(n.out) != 1 || n.in[0] == nil {
		return n.errorf("needs one input and one output")
	}
	in, out := n.in[0], n.out[0]
	out.shape = append([]int(nil), in.shape...)
	if !isQuantized(out) {
		return n.errorf("output %s has no quantization parameters", out.name())
	}
	if len(out.quant.Scale) > 1 {
		return n.errorf("%w: per-channel QUANTIZE output", models.ErrUnsupported)
	}
	switch in.typ {
	case models.Float32:
		return nil
	case models.Int8, models.UInt8, models.Int16:
		if !isQuantized(in) {
			return n.errorf("input %s has no quantization parameters", in.name())
		}
		k.q, k.shift = quantizeMultiplier(in.scale() / out.scale())
		k.lut = nil
		if in.typ.Size() == 1 && out.typ.Size() == 1 {
			k.lut = new([256]byte)
			lo, hi := qRange(out.typ)
			for b := range 256 {
				x := int32(b)
				if in.typ == models.Int8 {
					x = int32(int8(b))
				}
				k.lut[b] = byte(clamp32(mbqm(x-in.zp(), k.q, k.shift)+out.zp(), lo, hi))
			}
		}
		return nil
	}
	return n.errorf("%w: QUANTIZE from %s", models.ErrUnsupported, in.typ)
}

func (k *quantize) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	lo, hi := qRange(out.typ)
	oz := out.zp()
	cnt := in.elems()
	if in.typ == models.Float32 {
		x := f32s(in.data)[:cnt]
		s := float32(out.scale())
		if out.typ.Size() == 1 {
			y := out.data[:cnt]
			ip.parallel(cnt, 1<<14, func(_, l, h int) {
				for i, xv := range x[l:h] {
					v := int32(math.Round(float64(xv / s)))
					y[l+i] = byte(clamp32(v+oz, lo, hi))
				}
			})
			return nil
		}
		for i := 0; i < cnt; i++ {
			v := int32(math.Round(float64(x[i] / s)))
			qput(out, i, clamp32(v+oz, lo, hi))
		}
		return nil
	}
	if t := k.lut; t != nil {
		ip.lookup8(out.data[:cnt], in.data[:cnt], t)
		return nil
	}
	iz := in.zp()
	for i := 0; i < cnt; i++ {
		v := mbqm(qget(in, i)-iz, k.q, k.shift) + oz
		qput(out, i, clamp32(v, lo, hi))
	}
	return nil
}

type dequantize struct{}

func (k *dequantize) prepare(ip *Interpreter, n *node) error {
	if len(n.in) < 1 || len(n.out) != 1 || n.in[0] == nil {
		return n.errorf("needs one input and one output")
	}
	in, out := n.in[0], n.out[0]
	out.shape = append([]int(nil), in.shape...)
	out.typ = models.Float32
	switch in.typ {
	case models.Int8, models.UInt8, models.Int16:
		if !isQuantized(in) {
			return n.errorf("input %s has no quantization parameters", in.name())
		}
		return nil
	case models.Float16:
		return nil
	}
	return n.errorf("%w: DEQUANTIZE from %s", models.ErrUnsupported, in.typ)
}

func (k *dequantize) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	y := f32s(out.data)
	if in.typ == models.Float16 {
		for i := range y {
			y[i] = f16to32(uint16(in.data[2*i]) | uint16(in.data[2*i+1])<<8)
		}
		return nil
	}
	q := in.quant
	inner, axisLen := 1, 1
	if len(q.Scale) > 1 {
		axisLen = in.shape[q.Axis]
		for _, d := range in.shape[q.Axis+1:] {
			inner *= d
		}
	}
	for i := range y {
		c := 0
		if axisLen > 1 {
			c = (i / inner) % axisLen
		}
		y[i] = q.Scale[c] * float32(int64(qget(in, i))-q.ZeroPoint[c])
	}
	return nil
}

func f16to32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := int(h>>10) & 0x1f
	frac := uint32(h & 0x3ff)
	switch {
	case exp == 0:
		if frac == 0 {
			return math.Float32frombits(sign)
		}
		v := float32(frac) / 1024 / 16384
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | frac<<13)
}

// cast converts between numeric types (float to integer truncates).
type cast struct{}

func (k *cast) prepare(ip *Interpreter, n *node) error {
	if len(n.in) < 1 || len(n.out) != 1 || n.in[0] == nil {
		return n.errorf("needs one input and one output")
	}
	in, out := n.in[0], n.out[0]
	out.shape = append([]int(nil), in.shape...)
	ok := func(t models.DType) bool {
		switch t {
		case models.Float32, models.Int32, models.Int64, models.Bool, models.Int8, models.UInt8:
			return true
		}
		return false
	}
	if !ok(in.typ) || !ok(out.typ) {
		return n.errorf("%w: CAST %s to %s", models.ErrUnsupported, in.typ, out.typ)
	}
	return nil
}

func (k *cast) eval(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	cnt := in.elems()
	for i := 0; i < cnt; i++ {
		if in.typ == models.Float32 {
			setNum(out, i, 0, float64(f32s(in.data)[i]), true)
		} else {
			setNum(out, i, getInt(in, i), 0, false)
		}
	}
	return nil
}

func getInt(t *rtensor, i int) int64 {
	switch t.typ {
	case models.Int32:
		return int64(i32s(t.data)[i])
	case models.Int64:
		return i64s(t.data)[i]
	case models.Int8:
		return int64(int8(t.data[i]))
	case models.UInt8, models.Bool:
		return int64(t.data[i])
	case models.Float32:
		return int64(f32s(t.data)[i])
	}
	return 0
}

func setNum(t *rtensor, i int, iv int64, fv float64, isFloat bool) {
	if isFloat && t.typ != models.Float32 {
		if t.typ == models.Bool {
			iv = int64(b2u(fv != 0))
		} else {
			iv = int64(fv) // truncation, as static_cast
		}
	}
	switch t.typ {
	case models.Float32:
		if isFloat {
			f32s(t.data)[i] = float32(fv)
		} else {
			f32s(t.data)[i] = float32(iv)
		}
	case models.Int32:
		i32s(t.data)[i] = int32(iv)
	case models.Int64:
		i64s(t.data)[i] = iv
	case models.Int8, models.UInt8:
		t.data[i] = byte(iv)
	case models.Bool:
		t.data[i] = b2u(iv != 0)
	}
}

// gcd is the greatest common divisor of a and b (a, b > 0).
func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
