package tflite

import "edgefleet/models"

// GATHER and GATHER_ND.

func init() {
	register(OpGather, func() opKernel { return &gather{} })
	register(OpGatherNd, func() opKernel { return &gatherND{} })
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
	rows := idx.elems() / max(k.depth, 1)
	if k.depth == 0 {
		rows = idx.elems()
	}
	if idx.typ == models.Int64 {
		return gatherNDRows(n, k, i64s(idx.data), rows, p, out)
	}
	return gatherNDRows(n, k, i32s(idx.data), rows, p, out)
}

// gatherNDRows copies the rows of p that the depth-long index tuples name;
// rows of one 4-byte element (full-depth indices) are moved as words.
func gatherNDRows[I int32 | int64](n *node, k *gatherND, ix []I, rows int, p, out *rtensor) error {
	es := p.typ.Size()
	st := rowStrides(p.shape)
	chunk := k.inner * es
	words := chunk == 4
	var pw, ow []int32
	if words {
		pw, ow = i32s(p.data), i32s(out.data)
	}
	for r := 0; r < rows; r++ {
		off := 0
		for j, x := range ix[r*k.depth : (r+1)*k.depth] {
			if x < 0 || int64(x) >= int64(p.shape[j]) {
				return n.errorf("index %d out of range [0, %d) on axis %d", x, p.shape[j], j)
			}
			off += int(x) * st[j]
		}
		if words {
			ow[r] = pw[off]
			continue
		}
		copy(out.data[r*chunk:(r+1)*chunk], p.data[off*es:off*es+chunk])
	}
	return nil
}
