package tflite

import (
	"math"

	"edgefleet/models/tflite/kernel"
)

// Hybrid (dynamic-range) CONV_2D: float activations, int8 weights. As
// TFLite's hybrid kernels do, each invoke quantizes the input to int8 with
// a scale and zero point from its own range (AsymmetricQuantizeFloats), runs
// the int8 GEMM, and scales the int32 sums back to float.

// hybridInt8 turns the int8 path of hybrid convolutions on; off, they run in
// float32 with the weights dequantized at load (tests compare the two).
var hybridInt8 = true

// prepareHybridS8 sets up the int8 path of a hybrid convolution.
func (c *conv) prepareHybridS8(ip *Interpreter, n *node, in, f, bias *rtensor) error {
	g := c.g
	if err := c.prepareBiasF(n, bias); err != nil {
		return err
	}
	fq := f.quant
	c.fscale = make([]float32, g.oc)
	for ch := range c.fscale {
		c.fscale[ch] = fq.Scale[0]
		if len(fq.Scale) > 1 {
			c.fscale[ch] = fq.Scale[ch]
		}
	}
	c.packed = kernel.PackS8(g.oc, c.k, i8s(f.data))
	c.hcorr, c.hmul = make([]int32, g.oc), make([]float32, g.oc)
	c.kind = "hybrid-s8"
	ip.needScratch(alignUp(tileM*c.k, 64) + tileM*g.oc*4)
	ip.qinNeed = max(ip.qinNeed, in.elems())
	return nil
}

// hybridS8OK says whether the int8 path can run filter f: symmetric int8
// weights quantized per tensor or per output channel.
func hybridS8OK(c *conv, f *rtensor) bool {
	q := f.quant
	if !hybridInt8 || c.depthwise || c.groups > 1 || len(q.Scale) == 0 || (len(q.Scale) > 1 && q.Axis != 0) {
		return false
	}
	for _, zp := range q.ZeroPoint {
		if zp != 0 {
			return false
		}
	}
	return true
}

// asymmetricParams is TFLite's AsymmetricQuantizeFloats choice of scale and
// zero point for values in [lo, hi].
func asymmetricParams(lo, hi float32) (scale float32, zp int32) {
	rmin, rmax := math.Min(0, float64(lo)), math.Max(0, float64(hi))
	if rmin == rmax {
		return 1, 0
	}
	s := (rmax - rmin) / 255
	zpMin, zpMax := -128-rmin/s, 127-rmax/s
	zpd := zpMax
	if 128+math.Abs(rmin/s) < 127+math.Abs(rmax/s) {
		zpd = zpMin
	}
	switch {
	case zpd <= -128:
		zp = -128
	case zpd >= 127:
		zp = 127
	default:
		zp = int32(math.Round(zpd))
	}
	return float32(s), zp
}

// convHybridS8 runs a hybrid convolution through the int8 GEMM, one batch
// item (one quantization) at a time.
func (c *conv) convHybridS8(ip *Interpreter, in, out *rtensor) {
	g := &c.g
	src, dst := f32s(in.data), f32s(out.data)
	per, M, oc := g.ih*g.iw*g.ic, g.oh*g.ow, g.oc
	sums := c.packed.RowSums()
	// The fused SiLU (fuse.go) runs on tiles only where they start on a
	// vector of the whole tensor, as its own pass would split it.
	post := c.post
	if g.n > 1 && M*oc%16 != 0 {
		post = nil
	}
	for b := 0; b < g.n; b++ {
		s, q := src[b*per:(b+1)*per], ip.qin[b*per:(b+1)*per]
		scale, zp := asymmetricParams(kernel.MinMaxF32(s))
		inv := float32(1 / float64(scale))
		for ch, sum := range sums {
			c.hcorr[ch], c.hmul[ch] = zp*sum, scale*c.fscale[ch]
		}
		ip.parallelVec(per, func(lo, hi int) { kernel.QuantizeF32(q[lo:hi], s[lo:hi], inv, float32(zp)) })
		d := dst[b*M*oc : (b+1)*M*oc]
		tm := convTileRows(M, ip.threads)
		tiles := (M + tm - 1) / tm
		ip.parallelChunks(tiles, tiles, ip.threads, func(w, t0, t1 int) {
			sc := ip.scratch[w]
			col := i8s(sc[:tileM*c.k])
			acc := i32s(sc[alignUp(tileM*c.k, 64):])[:tileM*oc]
			for t := t0; t < t1; t++ {
				m0, m1 := t*tm, min(M, (t+1)*tm)
				var a []int8
				if c.direct {
					a = q[m0*c.k : m1*c.k]
				} else {
					im2col(g, q, col, m0, m1, int8(zp))
					a = col[:(m1-m0)*c.k]
				}
				c.packed.Gemm(m1-m0, a, c.k, acc, oc)
				// (acc - zp·Σw)·scale·filter scale + bias, clamped
				kernel.DequantF32(d[m0*oc:m1*oc], acc, c.hcorr, c.hmul, c.biasF, c.flo, c.fhi)
				post.f32(d[m0*oc : m1*oc])
			}
		})
	}
}
