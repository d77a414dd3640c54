package tflite

import (
	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

// fuse rewrites chains of small operators into one before planning. Today:
// MUL(x, LOGISTIC(x)), the SiLU of every YOLO block, becomes one pass over x
// and the LOGISTIC no longer runs (its output takes no memory). On float32
// the pass is kernel.SiLU, the same float32 product the two operators
// compute; on int8 it is one 256-entry table, the MUL's table at the
// LOGISTIC's table: the same bytes.
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
