package tflite

import "edgefleet/models"

// fusePadF32 lets fusePad fold PAD into float32 convolutions (tests turn it
// off to compare with the two operators apart).
var fusePadF32 = true

// fusePad folds PAD into the convolution that alone reads its output:
// CONV_2D or DEPTHWISE_CONV_2D with VALID padding on a PAD of the height
// and width by its zero point (full-int8 YOLO exports put one before every
// stride-2 convolution, the first on the 640×640 image). The convolution
// then reads PAD's input with that padding as its own (im2col and the taps
// pad with the input zero point, the value PAD writes), and PAD no longer
// runs: the same bytes without the padded copy. The same holds for a
// CONV_2D on float32 activations (every PAD of the hybrid exports): PAD
// writes +0, the value the float paths pad with; a hybrid convolution
// quantizes its input over a range that always includes 0
// (asymmetricParams), so the padded zeros change neither its scale nor its
// zero point, and its im2col pads with that zero point, the code of +0.
func (ip *Interpreter) fusePad(readers []int, producer []*node) {
	for _, m := range ip.nodes {
		op := m.code.Builtin
		if op != OpConv2d && op != OpDepthwiseConv2d || len(m.in) < 2 || m.in[0] == nil || m.op.OptByte(0, 0) != padValid {
			continue
		}
		c, ok := m.k.(*conv)
		x := m.in[0]
		p := producer[x.idx]
		if !ok || p == nil || p.code.Builtin != OpPad || len(p.in) != 2 || p.in[0] == nil || readers[x.idx] != 1 {
			continue
		}
		pads, ok := constInts(p.in[1])
		in := p.in[0]
		if !ok || len(pads) != 8 || pads[0] != 0 || pads[1] != 0 || pads[6] != 0 || pads[7] != 0 ||
			!sameQuant8(in, x) && !(op == OpConv2d && fusePadF32 && allF32(in, x)) {
			continue
		}
		pad := [4]int{pads[2], pads[3], pads[4], pads[5]}
		if min(pad[0], pad[1], pad[2], pad[3]) < 0 || max(pad[0], pad[1], pad[2], pad[3]) > 1<<16 {
			continue
		}
		c.fusedPad = &pad
		m.in = append([]*rtensor{in}, m.in[1:]...)
		p.fused = m.index
	}
}

// sameQuant8 reports whether a and b are int8 with the same per-tensor
// scale and zero point.
func sameQuant8(a, b *rtensor) bool {
	if a.typ != models.Int8 || b.typ != models.Int8 || !isQuantized(a) || !isQuantized(b) {
		return false
	}
	qa, qb := a.quant, b.quant
	return len(qa.Scale) == 1 && len(qb.Scale) == 1 && len(qa.ZeroPoint) == 1 && len(qb.ZeroPoint) == 1 &&
		qa.Scale[0] == qb.Scale[0] && qa.ZeroPoint[0] == qb.ZeroPoint[0]
}

// applyFusedPad makes g, computed for VALID padding, that of the
// convolution on the padded input of a fused PAD (top, bottom, left,
// right).
func (c *conv) applyFusedPad(g *convGeom) {
	p := c.fusedPad
	if p == nil {
		return
	}
	g.oh, _ = padding(padValid, g.ih+p[0]+p[1], g.kh, g.sh, g.dh)
	g.ow, _ = padding(padValid, g.iw+p[2]+p[3], g.kw, g.sw, g.dw)
	g.padTop, g.padLeft = p[0], p[2]
}

// allF32 reports whether every tensor is float32.
func allF32(ts ...*rtensor) bool {
	for _, t := range ts {
		if t == nil || t.typ != models.Float32 {
			return false
		}
	}
	return true
}
