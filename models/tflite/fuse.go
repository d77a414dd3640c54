package tflite

import (
	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
)

// fuse rewrites chains of small operators into one before planning. Today:
// MUL(x, LOGISTIC(x)) on float32, the SiLU of every YOLO block, becomes one
// pass over x (kernel.SiLU, the same float32 product the two operators
// compute); the LOGISTIC no longer runs and its output takes no memory.
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
	for _, m := range ip.nodes {
		if m.code.Builtin != OpMul || len(m.in) != 2 || len(m.out) != 1 || m.in[0] == nil || m.in[1] == nil || m.op.OptByte(0, 0) != 0 {
			continue
		}
		for j := range 2 {
			x, s := m.in[j], m.in[1-j]
			l := producer[s.idx]
			if l == nil || l.code.Builtin != OpLogistic || len(l.in) != 1 || l.in[0] != x || readers[s.idx] != 1 ||
				x.typ != models.Float32 || s.typ != models.Float32 || m.out[0].typ != models.Float32 ||
				!sameShape(x.decl.Shape, s.decl.Shape) || x.konst {
				continue
			}
			m.k, m.in = &silu{}, []*rtensor{x}
			l.fused = m.index
			break
		}
	}
}

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
