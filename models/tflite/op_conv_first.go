package tflite

import (
	"encoding/binary"
	"unsafe"

	"edgefleet/models/tflite/kernel"
)

// The first convolution of a YOLO network reads the 3-channel image: 3×3
// taps of 3 channels, so each kernel row of its im2col is 9 contiguous
// bytes, too short for copy to pay its call. Its patch rows are built here
// with word moves instead.

// im2colWords reports whether im2col copies the kernel rows of g as two
// overlapping 8-byte words: int8 data, no dilation across x and kw·ic in
// [8, 16].
func im2colWords(g *convGeom) bool {
	l := g.kw * g.ic
	return g.dw == 1 && l >= 8 && l <= 16
}

// im2colS8Words is im2col for im2colWords geometries: a pixel whose window
// lies inside the input gets its kh kernel rows as words, the others go
// through im2colRows.
func im2colS8Words(g *convGeom, src, dst []byte, m0, m1 int, pad int8) {
	k, l := g.kh*g.kw*g.ic, g.kw*g.ic
	hw := g.oh * g.ow
	b, r := m0/hw, m0%hw
	oy, ox := r/g.ow, r%g.ow
	dy := g.dh * g.iw * g.ic
	for m := m0; m < m1; m++ {
		iy0, ix0 := oy*g.sh-g.padTop, ox*g.sw-g.padLeft
		row := dst[(m-m0)*k:][:k]
		if iy0 < 0 || iy0+(g.kh-1)*g.dh >= g.ih || ix0 < 0 || ix0+g.kw > g.iw {
			im2colRows(g, i8s(src), i8s(row), m, m+1, pad)
		} else {
			s := ((b*g.ih+iy0)*g.iw + ix0) * g.ic
			for p := 0; p < k; p += l {
				binary.LittleEndian.PutUint64(row[p:], binary.LittleEndian.Uint64(src[s:]))
				binary.LittleEndian.PutUint64(row[p+l-8:], binary.LittleEndian.Uint64(src[s+l-8:]))
				s += dy
			}
		}
		if ox++; ox == g.ow {
			ox = 0
			if oy++; oy == g.oh {
				oy = 0
				b++
			}
		}
	}
}

// u8s views int8s as bytes.
func u8s(s []int8) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s))
}

// prepareRowConv sets the int8 convolution of g up to run through
// kernel.ConvRowS8 when its input has at most 4 channels (no dilation across
// x, not grouped) and the CPU runs that kernel fast: the patch rows then come
// straight from a per-worker copy of the kh input rows of an output row, the
// padding filled in, rather than through im2col's short copies. w is the
// [oc][kh][kw][ic] filter.
func (c *conv) prepareRowConv(ip *Interpreter, w []int8) error {
	g := &c.g
	if !kernel.ConvRowS8Fast() || c.depthwise || c.groups > 1 || c.direct || g.ic > 4 || g.dw != 1 {
		return nil
	}
	c.rowStride = ((g.ow-1)*g.sw + g.kw) * g.ic
	rc, err := kernel.PackConvRowS8(g.oc, g.kh, g.kw, g.ic, c.rowStride, w)
	if err != nil {
		return err
	}
	c.rowConv = rc
	ip.needScratch(g.kh*c.rowStride + 4) // the rows, and the kernel's reach past them
	return nil
}

// convS8Rows is convS8 through kernel.ConvRowS8, one output row at a time.
func (c *conv) convS8Rows(ip *Interpreter, in, out *rtensor) {
	g := &c.g
	src, dst := i8s(in.data), i8s(out.data)
	stride, ic := c.rowStride, g.ic
	pw := stride / ic // pixels of a row
	pad := int8(c.inZP)
	ip.parallel(g.n*g.oh, 1, func(worker, r0, r1 int) {
		buf := i8s(ip.scratch[worker])[:g.kh*stride+4]
		for r := r0; r < r1; r++ {
			b, oy := r/g.oh, r%g.oh
			for ky := 0; ky < g.kh; ky++ {
				row := buf[ky*stride:][:stride]
				iy := oy*g.sh - g.padTop + ky*g.dh
				if iy < 0 || iy >= g.ih {
					fill(row, pad)
					continue
				}
				// input columns -padLeft … pw - padLeft - 1
				left := min(g.padLeft, pw) * ic
				fill(row[:left], pad)
				n := 0
				if x1 := min(g.iw, pw-g.padLeft); x1 > 0 {
					base := (b*g.ih + iy) * g.iw * ic
					n = copy(row[left:], src[base:base+x1*ic])
				}
				fill(row[left+n:], pad)
			}
			c.rowConv.Run(dst[r*g.ow*g.oc:], buf, g.ow, g.sw*ic, c.krqRuy)
			c.post.s8(out.data[r*g.ow*g.oc : (r+1)*g.ow*g.oc]) // a fused SiLU, while the row is in cache
		}
	})
}
