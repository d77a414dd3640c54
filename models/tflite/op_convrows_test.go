package tflite

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestConvF32RowsExact: the in-place float convolution (convF32Rows) gives
// the im2col path's output bit for bit, signed zeros included, over
// paddings, strides, vertical dilation, filter sizes, channel counts,
// activations, batches and thread counts, with inputs and weights that mix
// random values with zeros of both signs and exact cancellations.
func TestConvF32RowsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 6))
	type tcase struct {
		h, w, ic, oc, kh, kw, sh, sw, dh, batch int
		pad, act                                uint8
	}
	cases := []tcase{
		{32, 32, 3, 16, 3, 3, 2, 2, 1, 1, padSame, 0}, // the stems of yolo26n (SAME) and yolov8n (after PAD, VALID)
		{34, 34, 3, 16, 3, 3, 2, 2, 1, 1, padValid, 0},
		{9, 11, 3, 16, 3, 3, 1, 1, 1, 2, padSame, 1},   // relu, batch 2
		{7, 6, 1, 5, 5, 5, 1, 1, 1, 1, padSame, 3},     // relu6, the filter wider than some rows' interior
		{5, 4, 2, 17, 3, 5, 2, 3, 1, 1, padSame, 0},    // no interior column at all
		{12, 13, 4, 33, 3, 2, 3, 2, 2, 1, padValid, 0}, // dilation along y
		{10, 10, 8, 8, 2, 2, 2, 2, 1, 2, padSame, 0},   // padding only after
		{6, 9, 3, 1, 1, 3, 1, 1, 1, 1, padSame, 0},     // one output channel
		{8, 8, 3, 24, 3, 1, 1, 1, 3, 1, padSame, 1},    // kw 1, rows in the padding
		{3, 40, 5, 16, 3, 3, 1, 2, 1, 1, padSame, 0},   // every output row has padded filter rows
		{2, 1, 2, 6, 5, 5, 1, 1, 1, 1, padSame, 0},     // the filter wider than the input: no interior
	}
	for _, c := range cases {
		name := fmt.Sprintf("%dx%dx%d_oc%d_k%dx%d_s%dx%d_d%d_b%d_p%d_a%d", c.h, c.w, c.ic, c.oc, c.kh, c.kw, c.sh, c.sw, c.dh, c.batch, c.pad, c.act)
		t.Run(name, func(t *testing.T) {
			filt := make([]float32, c.oc*c.kh*c.kw*c.ic)
			edgyF32(r, filt)
			bias := make([]float32, c.oc)
			for i := range bias {
				if i%2 == 1 { // zero biases keep the sign of zero sums
					bias[i] = r.Float32() - 0.5
				}
			}
			oh, _ := padding(c.pad, c.h, c.kh, c.sh, c.dh)
			ow, _ := padding(c.pad, c.w, c.kw, c.sw, 1)
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "x", Type: models.Float32, Shape: []int{1, c.h, c.w, c.ic}},
					{Name: "f", Type: models.Float32, Shape: []int{c.oc, c.kh, c.kw, c.ic}, Data: tt.Float32s(filt...)},
					{Name: "b", Type: models.Float32, Shape: []int{c.oc}, Data: tt.Float32s(bias...)},
					{Name: "y", Type: models.Float32, Shape: []int{1, oh, ow, c.oc}},
				},
				Ops: []tt.Op{{Builtin: int32(OpConv2d), Inputs: []int{0, 1, 2}, Outputs: []int{3},
					Options: []any{c.pad, int32(c.sw), int32(c.sh), c.act, int32(1), int32(c.dh)}}},
				Inputs: []int{0}, Outputs: []int{3},
			}
			x := make([]float32, c.batch*c.h*c.w*c.ic)
			edgyF32(r, x)
			for _, threads := range []int{1, 2} {
				outs := map[bool][]float32{}
				for _, on := range []bool{true, false} {
					outs[on] = runConvRows(t, m, x, c.batch, threads, on)
				}
				for i, got := range outs[true] {
					if want := outs[false][i]; math.Float32bits(got) != math.Float32bits(want) {
						t.Fatalf("threads %d: output %d (pixel %d, channel %d): in place %g (%#x), im2col %g (%#x)",
							threads, i, i/c.oc, i%c.oc, got, math.Float32bits(got), want, math.Float32bits(want))
					}
				}
			}
		})
	}
}

// TestConvF32RowsNetworks: the hybrid networks, whose first convolution is
// float from 3 channels, give the same output bytes with the in-place path
// and the PAD before it folded in as with PAD and im2col apart, at 1 and 2
// threads.
func TestConvF32RowsNetworks(t *testing.T) {
	for _, model := range []string{"yolov8n_int8", "yolo26n_int8_320_e2e"} {
		t.Run(model, func(t *testing.T) {
			mb, err := os.ReadFile(modeltest.Path(t, "models", model+".tflite"))
			if err != nil {
				t.Fatal(err)
			}
			in := benchInput(model)
			if len(in) == 0 {
				t.Skip("no golden input tensor for", model)
			}
			for _, threads := range []int{1, 2} {
				var outs [2][]byte
				for i, on := range []bool{true, false} {
					convRowsF32, fusePadF32 = on, on
					e, err := Open(context.Background(), mb, models.Options{Threads: threads})
					convRowsF32, fusePadF32 = true, true
					if err != nil {
						t.Fatal(err)
					}
					ip := e.(*Interpreter)
					if c := convOf(ip.nodes[firstConv(ip)]); on && (c.rowsF == nil || model == "yolov8n_int8" && c.fusedPad == nil) {
						t.Fatal("the first convolution does not take the in-place path with its PAD folded in")
					}
					copy(ip.Input(0), in)
					if err := ip.Invoke(context.Background()); err != nil {
						t.Fatal(err)
					}
					outs[i] = append([]byte(nil), ip.Output(0)...)
					e.Close()
				}
				if !bytes.Equal(outs[0], outs[1]) {
					t.Errorf("threads %d: outputs differ between the in-place and im2col paths", threads)
				}
			}
		})
	}
}

// firstConv is the index of ip's first CONV_2D node.
func firstConv(ip *Interpreter) int {
	for i, n := range ip.nodes {
		c, ok := n.k.(*conv)
		if f, fused := n.k.(*convSiLU); fused {
			c, ok = f.conv, true
		}
		if ok && !c.depthwise {
			return i
		}
	}
	return 0
}

// runConvRows runs the one-convolution model m on x with convF32Rows on or
// off and returns its output.
func runConvRows(t *testing.T, m tt.Model, x []float32, batch, threads int, on bool) []float32 {
	t.Helper()
	convRowsF32 = on
	defer func() { convRowsF32 = true }()
	e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ip := e.(*Interpreter)
	if err := ip.SetBatch(batch); err != nil {
		t.Fatal(err)
	}
	if got := ip.nodes[0].k.(*conv).rowsF != nil; got != on {
		t.Fatalf("in-place path %v, want %v", got, on)
	}
	copy(f32s(ip.Input(0)), x)
	if err := ip.Invoke(context.Background()); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), f32s(ip.Output(0))...)
}

// edgyF32 fills v with normal values, a quarter of them replaced by zeros
// of both signs, ±1 and small powers of two (whose products cancel exactly).
func edgyF32(r *rand.Rand, v []float32) {
	edges := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, -0.25, 1e-20}
	for i := range v {
		if r.IntN(4) == 0 {
			v[i] = edges[r.IntN(len(edges))]
		} else {
			v[i] = float32(r.NormFloat64())
		}
	}
}

// BenchmarkConvF32Stem measures the float first convolutions of the hybrid
// networks (3 channels to 16, 3x3, stride 2) at 1 thread, on the in-place
// path and on the im2col path: yolov8n's (after its PAD: 642x642 VALID) and
// yolo26n's (320x320 SAME).
func BenchmarkConvF32Stem(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []struct {
		name string
		in   int
		pad  uint8
	}{{"yolov8n_642valid", 642, padValid}, {"yolo26n_320same", 320, padSame}} {
		const ic, oc, k = 3, 16, 3
		on, _ := padding(s.pad, s.in, k, 2, 1)
		filt := make([]float32, oc*k*k*ic)
		edgyF32(r, filt)
		m := tt.Model{
			Tensors: []tt.Tensor{
				{Name: "x", Type: models.Float32, Shape: []int{1, s.in, s.in, ic}},
				{Name: "f", Type: models.Float32, Shape: []int{oc, k, k, ic}, Data: tt.Float32s(filt...)},
				{Name: "b", Type: models.Float32, Shape: []int{oc}, Data: make([]byte, 4*oc)},
				{Name: "y", Type: models.Float32, Shape: []int{1, on, on, oc}},
			},
			Ops: []tt.Op{{Builtin: int32(OpConv2d), Inputs: []int{0, 1, 2}, Outputs: []int{3},
				Options: []any{s.pad, int32(2), int32(2), uint8(1)}}},
			Inputs: []int{0}, Outputs: []int{3},
		}
		for _, path := range []string{"rows", "im2col"} {
			b.Run(fmt.Sprintf("%s/%s", s.name, path), func(b *testing.B) {
				convRowsF32 = path == "rows"
				e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 1})
				convRowsF32 = true
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				x := f32s(e.Input(0))
				for i := range x {
					x[i] = r.Float32()
				}
				b.ReportMetric(float64(benchInvokes(b, e).Microseconds())/1000, "cpu-ms/op")
			})
		}
	}
}

// convOf is n's convolution, unwrapped from a fused SiLU.
func convOf(n *node) *conv {
	if f, ok := n.k.(*convSiLU); ok {
		return f.conv
	}
	return n.k.(*conv)
}
