package tflite

import (
	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

// FULLY_CONNECTED (constant or computed weights) and BATCH_MATMUL.

func init() {
	register(OpBatchMatmul, func() opKernel { return &batchMatmul{} })
	register(OpFullyConnected, func() opKernel { return &fullyConnected{} })
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
	// the operands that need it transposed, every batch item once
	var sc int
	if k.adjX {
		sc += x.elems()
	}
	if !k.adjY {
		sc += y.elems()
	}
	ip.needScratch(sc * 4)
	out.typ = models.Float32
	out.shape = append(append([]int(nil), bc.out...), m, nn)
	return nil
}

func (k *batchMatmul) eval(ip *Interpreter, n *node) error {
	x, y, out := f32s(n.in[0].data), f32s(n.in[1].data), f32s(n.out[0].data)
	m, kd, nn := k.m, k.kd, k.nn
	xs, ys, os := m*kd, kd*nn, m*nn
	// A as m rows of kd, B as nn rows of kd: both contiguous. Each batch item
	// is transposed once, however often the broadcast reuses it.
	sc := f32s(ip.scratch[0])
	if k.adjX {
		at := sc[:len(x)]
		for i := 0; i < len(x)/max(xs, 1); i++ {
			transpose2(at[i*xs:], x[i*xs:], kd, m)
		}
		x, sc = at, sc[len(x):]
	}
	if !k.adjY {
		bt := sc[:len(y)]
		for i := 0; i < len(y)/max(ys, 1); i++ {
			transpose2(bt[i*ys:], y[i*ys:], kd, nn)
		}
		y = bt
	}
	k.bc.each(func(o, ia, ib, sa, sb, cnt int) {
		for j := 0; j < cnt; j++ {
			a := x[(ia+j*sa)*xs:][:xs]
			b := y[(ib+j*sb)*ys:][:ys]
			c := out[(o+j)*os:][:os]
			if nn == 1 {
				for i := range c {
					c[i] = dotF32(a[i*kd:][:kd], b)
				}
				continue
			}
			for i := 0; i < m; i++ {
				ar := a[i*kd:][:kd]
				cr := c[i*nn:][:nn]
				for q := range cr {
					cr[q] = dotF32(ar, b[q*kd:][:kd])
				}
			}
		}
	})
	return nil
}

// transpose2 writes the c×r transpose of the r×c matrix src into dst.
func transpose2(dst, src []float32, r, c int) {
	dst, src = dst[:r*c], src[:r*c]
	for i := 0; i < r; i++ {
		row := src[i*c:][:c]
		for j, v := range row {
			dst[j*r+i] = v
		}
	}
}

// dotF32 is Σ a[i]·b[i] with four partial sums.
func dotF32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
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
	// dyn holds the computed int8 weights, packed again at every invoke
	// into the same memory (dyn-s8).
	dyn *kernel.PackedS8
	// colAdj is the per-channel offset of a dyn-s8 product, k·zx·zw - zx·Σw.
	colAdj []int32
}

// dynRows is how many rows of a dynamic int8 product one Gemm call makes
// (its int32 results are the per-worker scratch).
const dynRows = 16

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
		return k.prepareDynamic(ip, n, x, w, bias, out)
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
		mult, shift := k.rq.kernelArgs(k.out)
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
		return k.evalDynamicS8(ip, n)
	case "dyn-f32":
		return k.evalDynamicF32(n)
	}
	if k.kind == "s8" {
		k.packed.GemmRequant(k.rows, i8s(x.data), k.in, k.krq, i8s(out.data), k.out)
		return nil
	}
	o := f32s(out.data)
	k.packedF.Gemm(k.rows, f32s(x.data), k.in, o, k.out)
	kernel.BiasClampF32(o, k.biasF, k.flo, k.fhi)
	return nil
}

// prepareDynamic handles weights computed by the graph (attention blocks use
// FULLY_CONNECTED as a matrix product of two activations).
func (k *fullyConnected) prepareDynamic(ip *Interpreter, n *node, x, w, bias, out *rtensor) error {
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
		mult, shift := k.rq.kernelArgs(k.out)
		krq, err := kernel.NewRequantRuy(k.out, k.biasAdj, mult, shift, k.zo, k.lo, k.hi)
		if err != nil {
			return n.errorf("%v", err)
		}
		k.krq, k.colAdj = krq, make([]int32, k.out)
		if k.dyn == nil || k.dyn.N() != k.out || k.dyn.K() != k.in {
			k.dyn = kernel.PackS8(k.out, k.in, make([]int8, k.out*k.in))
		}
		ip.needScratch(dynRows * k.out * 4)
		return nil
	}
	return n.errorf("%w: FULLY_CONNECTED on %s", models.ErrUnsupported, x.typ)
}

// evalDynamicS8 multiplies by weights the graph computed: packed for the
// int8 kernel at each invoke, then Σ(x-zx)(w-zw) + bias from Σx·w, the row
// sums of both and the zero points, exactly in int32 as the plain loop:
// kernel.Requant.RequantRow adds the row's -zw·Σx and the channel's
// k·zx·zw - zx·Σw to the bias.
func (k *fullyConnected) evalDynamicS8(ip *Interpreter, n *node) error {
	x, w, out := n.in[0], n.in[1], n.out[0]
	xs, os := i8s(x.data), i8s(out.data)
	k.dyn.Repack(i8s(w.data))
	zx, zw := x.zp(), w.zp()
	kzz := int32(k.in) * zx * zw
	for c, s := range k.dyn.RowSums() {
		k.colAdj[c] = kzz - zx*s
	}
	ip.parallel(k.rows, dynRows, func(worker, r0, r1 int) {
		acc := i32s(ip.scratch[worker])[:dynRows*k.out]
		for rb := r0; rb < r1; rb += dynRows {
			m := min(dynRows, r1-rb)
			k.dyn.Gemm(m, xs[rb*k.in:], k.in, acc, k.out)
			for i := 0; i < m; i++ {
				var sx int32
				for _, v := range xs[(rb+i)*k.in:][:k.in] {
					sx += int32(v)
				}
				k.krq.RequantRow(os[(rb+i)*k.out:][:k.out], acc[i*k.out:], -zw*sx, k.colAdj)
			}
		}
	})
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
