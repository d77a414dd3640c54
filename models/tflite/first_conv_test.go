package tflite

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"edgefleet/models"
	"edgefleet/models/tflite/kernel"
	tt "edgefleet/models/tflite/tflitetest"
)

// firstConvModel is the stem of a full-int8 YOLO: an int8 h×w×ic image,
// PAD by (pt, pb, pl, pr), then a k×k int8 CONV_2D to oc channels (or a
// DEPTHWISE_CONV_2D, oc = ic) with stride s and VALID padding. With keepPad
// the PAD's output is also a graph output, so it cannot be fused.
type firstConvModel struct {
	h, w, ic, oc, k, s int
	pt, pb, pl, pr     int
	keepPad, depthwise bool
}

func (c firstConvModel) build(r *rand.Rand) []byte {
	oh, _ := padding(padValid, c.h+c.pt+c.pb, c.k, c.s, 1)
	ow, _ := padding(padValid, c.w+c.pl+c.pr, c.k, c.s, 1)
	f := tt.Tensor{Name: "f", Type: models.Int8, Shape: []int{c.oc, c.k, c.k, c.ic}}
	op := tt.Op{Builtin: int32(OpConv2d), Inputs: []int{2, 3, 4}, Outputs: []int{5},
		Options: []any{uint8(padValid), int32(c.s), int32(c.s), uint8(0), int32(1), int32(1)}}
	if c.depthwise {
		f.Shape, f.Axis = []int{1, c.k, c.k, c.oc}, 3
		op.Builtin = int32(OpDepthwiseConv2d)
		op.Options = []any{uint8(padValid), int32(c.s), int32(c.s), int32(1), uint8(0), int32(1), int32(1)}
	}
	f.Data = make([]byte, f.Shape[0]*f.Shape[1]*f.Shape[2]*f.Shape[3])
	for i := range f.Data {
		f.Data[i] = byte(r.IntN(256))
	}
	f.Scale = make([]float32, c.oc)
	bias := make([]int32, c.oc)
	for i := range f.Scale {
		f.Scale[i] = 0.002 + 0.01*r.Float32()
		bias[i] = int32(r.IntN(20000) - 10000)
	}
	xq := tt.Tensor{Type: models.Int8, Scale: []float32{1.0 / 255}, ZeroPoint: []int64{-128}}
	x, padded := xq, xq
	x.Name, x.Shape = "x", []int{1, c.h, c.w, c.ic}
	padded.Name, padded.Shape = "padded", []int{1, c.h + c.pt + c.pb, c.w + c.pl + c.pr, c.ic}
	p := tt.Tensor{Name: "paddings", Type: models.Int32, Shape: []int{4, 2},
		Data: tt.Int32s(0, 0, int32(c.pt), int32(c.pb), int32(c.pl), int32(c.pr), 0, 0)}
	m := tt.Model{
		Tensors: []tt.Tensor{x, p, padded, f,
			{Name: "b", Type: models.Int32, Shape: []int{c.oc}, Data: tt.Int32s(bias...)},
			{Name: "y", Type: models.Int8, Shape: []int{1, oh, ow, c.oc}, Scale: []float32{0.05}, ZeroPoint: []int64{-5}},
		},
		Ops:    []tt.Op{{Builtin: int32(OpPad), Inputs: []int{0, 1}, Outputs: []int{2}}, op},
		Inputs: []int{0}, Outputs: []int{5},
	}
	if c.keepPad {
		m.Outputs = []int{5, 2}
	}
	return tt.Build(m)
}

// TestFirstConvS8: the int8 stem convolution with its PAD fused (and the
// word-moving im2col) writes the same bytes as the same graph with the PAD
// run on its own, and the row kernel (kernel.ConvRowS8) the same as im2col
// and the GEMM, on YOLO's shape scaled down, odd sizes, pads on every side
// (one wider than the kernel's reach), 2 to 4 input channels, a 5×5 and a
// 1×1 kernel; and PAD fused into int8 depthwise convolutions.
func TestFirstConvS8(t *testing.T) {
	for _, c := range []firstConvModel{
		{h: 32, w: 32, ic: 3, oc: 16, k: 3, s: 2, pt: 1, pl: 1, pb: 1, pr: 1},
		{h: 17, w: 23, ic: 3, oc: 16, k: 3, s: 2, pt: 1, pl: 1},
		{h: 9, w: 11, ic: 3, oc: 20, k: 3, s: 1, pt: 2, pb: 1, pl: 0, pr: 3},
		{h: 12, w: 10, ic: 4, oc: 8, k: 3, s: 2, pt: 1, pl: 1, pb: 1, pr: 1},
		{h: 12, w: 10, ic: 3, oc: 16, k: 5, s: 2, pt: 2, pl: 2, pb: 2, pr: 2},
		{h: 5, w: 1, ic: 2, oc: 40, k: 3, s: 4, pt: 0, pl: 6, pb: 1, pr: 0},
		{h: 8, w: 8, ic: 3, oc: 3, k: 1, s: 1, pt: 1, pl: 2, pb: 3, pr: 4},
		{h: 6, w: 7, ic: 8, oc: 5, k: 1, s: 1, pb: 2, pr: 1}, // would be a direct 1x1
		{h: 11, w: 9, ic: 24, oc: 24, k: 3, s: 2, pt: 1, pl: 1, depthwise: true},
		{h: 10, w: 10, ic: 17, oc: 17, k: 3, s: 1, pt: 1, pl: 2, pb: 1, pr: 0, depthwise: true},
	} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(c.h), uint64(c.w)))
			in := make([]byte, c.h*c.w*c.ic)
			for i := range in {
				in[i] = byte(r.IntN(256))
			}
			in[0], in[1] = 0x80, 0x7f
			var outs [2][]byte
			for i, keep := range []bool{false, true} {
				c.keepPad = keep
				e, err := Open(context.Background(), c.build(rand.New(rand.NewPCG(1, 2))), models.Options{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				ip := e.(*Interpreter)
				if fused := ip.nodes[0].fused >= 0; fused == keep {
					t.Errorf("keepPad=%v: PAD fused=%v", keep, fused)
				}
				copy(ip.Input(0), in)
				if err := ip.Invoke(context.Background()); err != nil {
					t.Fatal(err)
				}
				outs[i] = bytes.Clone(ip.Output(0))
				if cv := ip.nodes[1].k.(*conv); cv.rowConv != nil {
					cv.rowConv = nil      // im2col and the GEMM
					copy(ip.Input(0), in) // the arena may have reused it
					if err := ip.Invoke(context.Background()); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(ip.Output(0), outs[i]) {
						t.Errorf("keepPad=%v: the row kernel differs from im2col", keep)
					}
				} else if kernel.ConvRowS8Fast() && c.k > 1 && !c.depthwise {
					t.Errorf("keepPad=%v: the row kernel is not used", keep)
				}
				e.Close()
			}
			if !bytes.Equal(outs[0], outs[1]) {
				t.Error("the fused PAD changed the output")
			}
		})
	}
}

// TestIm2colWords: the word-moving im2col writes what the generic one does.
func TestIm2colWords(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, g := range []convGeom{
		{n: 2, ih: 9, iw: 11, ic: 3, kh: 3, kw: 3, sh: 2, sw: 2, dh: 1, dw: 1, padTop: 1, padLeft: 1},
		{n: 1, ih: 7, iw: 8, ic: 4, kh: 3, kw: 3, sh: 1, sw: 1, dh: 2, dw: 1, padTop: 2, padLeft: 0},
		{n: 1, ih: 6, iw: 6, ic: 5, kh: 2, kw: 2, sh: 1, sw: 2, dh: 1, dw: 1, padTop: 0, padLeft: 1},
		{n: 1, ih: 6, iw: 9, ic: 8, kh: 1, kw: 2, sh: 1, sw: 1, dh: 1, dw: 1},
	} {
		g.oh = (g.ih+2*g.padTop-(g.kh-1)*g.dh-1)/g.sh + 1
		g.ow = (g.iw+2*g.padLeft-(g.kw-1)*g.dw-1)/g.sw + 1
		if !im2colWords(&g) {
			t.Fatalf("%+v: not a word geometry", g)
		}
		src := make([]int8, g.n*g.ih*g.iw*g.ic)
		for i := range src {
			src[i] = int8(r.IntN(256) - 128)
		}
		k, M := g.kh*g.kw*g.ic, g.n*g.oh*g.ow
		for _, m := range [][2]int{{0, M}, {1, M - 2}, {M / 2, M}} {
			got, want := make([]int8, M*k), make([]int8, M*k)
			im2col(&g, src, got, m[0], m[1], -7)
			im2colRows(&g, src, want, m[0], m[1], -7)
			if !bytes.Equal(u8s(got), u8s(want)) {
				t.Errorf("%+v rows %v: differs from im2colRows", g, m)
			}
		}
	}
}

// BenchmarkFirstConvS8 runs the stem of the full-int8 YOLO networks at
// 640×640: PAD 1 then a 3×3 stride-2 convolution from 3 to 16 channels.
func BenchmarkFirstConvS8(b *testing.B) {
	c := firstConvModel{h: 640, w: 640, ic: 3, oc: 16, k: 3, s: 2, pt: 1, pb: 1, pl: 1, pr: 1}
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("640x640x3_to16/threads=%d", threads), func(b *testing.B) {
			e, err := Open(context.Background(), c.build(rand.New(rand.NewPCG(1, 2))), models.Options{Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			cpu := benchInvokes(b, e)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
			b.ReportMetric(float64(cpu.Microseconds())/1000, "cpu-ms/op")
		})
	}
}
