package tflite

import (
	"sync/atomic"

	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

// fuse rewrites chains of small operators into one before planning. Today:
// MUL(x, LOGISTIC(x)), the SiLU of every YOLO block, becomes one pass over x
// and the LOGISTIC no longer runs (its output takes no memory). On float32
// the pass is kernel.SiLU, the same float32 product the two operators
// compute; on int8 it is one 256-entry table, the MUL's table at the
// LOGISTIC's table: the same bytes. Where x comes from a CONV_2D that
// nothing else reads, the convolution then does the SiLU too (convSiLU).
func (ip *Interpreter) fuse() {
	readers := make([]int, len(ip.tensors))
	producer := make([]*node, len(ip.tensors))
	for _, n := range ip.nodes {
		for _, t := range n.in {
			if t != nil {
				readers[t.idx]++
			}
		}
		for _, t := range n.out {
			producer[t.idx] = n
		}
	}
	for _, i := range ip.sg.Outputs {
		readers[i]++ // a graph output must be written
	}
	ip.fusePad(readers, producer) // fuse_pad.go
	for _, m := range ip.nodes {
		if m.code.Builtin != OpMul || len(m.in) != 2 || len(m.out) != 1 || m.in[0] == nil || m.in[1] == nil {
			continue
		}
		for j := range 2 {
			x, s := m.in[j], m.in[1-j]
			l := producer[s.idx]
			if l == nil || l.code.Builtin != OpLogistic || len(l.in) != 1 || l.in[0] != x || readers[s.idx] != 1 ||
				!sameShape(x.decl.Shape, s.decl.Shape) || x.konst {
				continue
			}
			switch y := m.out[0]; {
			case x.typ == models.Float32 && s.typ == models.Float32 && y.typ == models.Float32 && m.op.OptByte(0, 0) == 0:
				m.k = &silu{}
			case x.typ.Size() == 1 && x.typ == s.typ && x.typ == y.typ && x.typ != models.Bool:
				m.k = &silu8{logistic: l, pair: m.in, xFirst: j == 0}
			default:
				continue
			}
			m.in = []*rtensor{x}
			l.fused = m.index
			if p := producer[x.idx]; readers[x.idx] == 2 { // the LOGISTIC and the MUL
				fuseConvSiLU(p, m, l)
			}
			break
		}
	}
}

// silu8 is an 8-bit MUL(x, LOGISTIC(x)) as one table lookup.
type silu8 struct {
	logistic *node
	pair     []*rtensor // the MUL's inputs, as the model gives them
	xFirst   bool       // x is the MUL's first input
	table    [256]byte
}

func (k *silu8) prepare(ip *Interpreter, n *node) error {
	u := registry[OpLogistic]().(*unary)
	if err := u.prepare(ip, k.logistic); err != nil {
		return err
	}
	mul := &binaryOp{kind: OpMul}
	m := *n
	m.in = k.pair
	if err := mul.prepare(ip, &m); err != nil {
		return err
	}
	if mul.lut == nil {
		return n.errorf("fused SiLU: MUL on %s has no table", n.in[0].typ)
	}
	for v := range 256 {
		sv := int(u.table[v])
		i := v<<8 | sv
		if !k.xFirst {
			i = sv<<8 | v
		}
		k.table[v] = mul.lut[i]
	}
	return nil
}

func (k *silu8) eval(ip *Interpreter, n *node) error {
	ip.lookup8(n.out[0].data, n.in[0].data, &k.table)
	return nil
}

func (k *silu8) kindName() string { return "silu" }

// silu is x·σ(x) in one pass: a MUL that took over its LOGISTIC input.
type silu struct{}

func (k *silu) prepare(ip *Interpreter, n *node) error {
	in, out := n.in[0], n.out[0]
	if in.typ != models.Float32 {
		return n.errorf("fused SiLU on %s", in.typ)
	}
	out.shape = append([]int(nil), in.shape...)
	out.typ = models.Float32
	return nil
}

func (k *silu) eval(ip *Interpreter, n *node) error {
	x, y := f32s(n.in[0].data), f32s(n.out[0].data)
	ip.parallelVec(len(x), func(lo, hi int) { kernel.SiLU(y[lo:hi], x[lo:hi]) })
	return nil
}

func (k *silu) kindName() string { return "silu" }

// fuseConvs lets a convolution take the SiLU after it; tests turn it off to
// compare.
var fuseConvs = true

// fuseConvSiLU makes convolution p, whose output only the fused SiLU m
// reads, write m's output itself: the SiLU and its LOGISTIC l no longer run,
// and p's own output tensor takes no memory.
func fuseConvSiLU(p, m, l *node) {
	if !fuseConvs || p == nil || p.code.Builtin != OpConv2d || len(p.out) != 1 || p.out[0] != m.in[0] || p.fused >= 0 {
		return
	}
	c, ok := p.k.(*conv)
	if !ok {
		return
	}
	p.k = &convSiLU{conv: c, silu: m}
	p.out = m.out
	m.fused, l.fused = p.index, p.index
}

// convSiLU is a CONV_2D followed by its fused SiLU: the convolution writes
// the SiLU's output, applying the SiLU to each tile of output right after
// the tile is written (still in cache) through conv.post. The bytes are
// those of the two passes apart: the same float x through the same
// kernel.SiLU (tiles start at multiples of 16 floats, so the split between
// assembly and plain Go falls where the whole-tensor pass puts it), or the
// same table on the same int8 x. A path that has no tile hook (grouped
// convolution, a hybrid batch whose items do not end on a vector) leaves
// post.ran false, and eval runs the SiLU over the whole output after it.
type convSiLU struct {
	*conv
	silu *node // the fused MUL: in[0] is the convolution's own output
}

func (k *convSiLU) prepare(ip *Interpreter, n *node) error {
	own := *n
	own.out = k.silu.in // the convolution's shape, type and quantization
	k.conv.post = nil
	if err := k.conv.prepare(ip, &own); err != nil {
		return err
	}
	if err := k.silu.k.prepare(ip, k.silu); err != nil {
		return err
	}
	post := &convPost{}
	switch s := k.silu.k.(type) {
	case *silu8:
		post.table = &s.table
	case *silu:
	default:
		return n.errorf("fused SiLU kernel %T", s)
	}
	k.conv.post = post
	return nil
}

func (k *convSiLU) eval(ip *Interpreter, n *node) error {
	k.conv.post.ran.Store(false)
	if err := k.conv.eval(ip, n); err != nil {
		return err
	}
	if k.conv.post.ran.Load() {
		return nil
	}
	m := *k.silu
	m.in = n.out
	return m.k.eval(ip, &m)
}

func (k *convSiLU) kindName() string { return k.conv.kind + "+silu" }

// convPost is the SiLU a convolution applies to each output tile it writes;
// nil when none.
type convPost struct {
	table *[256]byte // int8: the SiLU's table; nil: float32 kernel.SiLU
	ran   atomic.Bool
}

// f32 applies the SiLU to float32 output rows o.
func (p *convPost) f32(o []float32) {
	if p == nil {
		return
	}
	kernel.SiLU(o, o)
	p.mark()
}

// s8 applies the SiLU table to int8 output rows o.
func (p *convPost) s8(o []byte) {
	if p == nil {
		return
	}
	kernel.LUT8(o, o, p.table)
	p.mark()
}

func (p *convPost) mark() {
	if !p.ran.Load() {
		p.ran.Store(true)
	}
}
