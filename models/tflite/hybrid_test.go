package tflite

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestHybridConvS8: a hybrid convolution (float input, int8 weights) on the
// int8 path is within its input quantization error of the float path:
// |Δ| ≤ scale/2 · Σ|w| per output, with scale the input's range / 255, for
// 1x1 and 3x3 filters, strides 1 and 2, padding, per-channel and per-tensor
// weights, and a batch of two whose items have different ranges.
func TestHybridConvS8(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, c := range []struct {
		h, w, ic, oc, k, s, batch int
		pad                       uint8
		perChannel                bool
	}{
		{6, 7, 8, 16, 1, 1, 1, padValid, true},
		{9, 9, 5, 7, 3, 2, 1, padSame, true},
		{8, 6, 16, 33, 3, 1, 2, padSame, false},
	} {
		t.Run(fmt.Sprintf("%dx%dx%d_oc%d_k%d_s%d_b%d", c.h, c.w, c.ic, c.oc, c.k, c.s, c.batch), func(t *testing.T) {
			fscale := []float32{0.01}
			if c.perChannel {
				fscale = make([]float32, c.oc)
				for i := range fscale {
					fscale[i] = 0.002 + 0.02*r.Float32()
				}
			}
			filt := make([]byte, c.oc*c.k*c.k*c.ic)
			for i := range filt {
				filt[i] = byte(r.IntN(255) - 127)
			}
			bias := make([]float32, c.oc)
			for i := range bias {
				bias[i] = r.Float32() - 0.5
			}
			oh, _ := padding(c.pad, c.h, c.k, c.s, 1)
			ow, _ := padding(c.pad, c.w, c.k, c.s, 1)
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "x", Type: models.Float32, Shape: []int{1, c.h, c.w, c.ic}},
					{Name: "f", Type: models.Int8, Shape: []int{c.oc, c.k, c.k, c.ic}, Data: filt, Scale: fscale},
					{Name: "b", Type: models.Float32, Shape: []int{c.oc}, Data: tt.Float32s(bias...)},
					{Name: "y", Type: models.Float32, Shape: []int{1, oh, ow, c.oc}},
				},
				Ops: []tt.Op{{Builtin: int32(OpConv2d), Inputs: []int{0, 1, 2}, Outputs: []int{3},
					Options: []any{c.pad, int32(c.s), int32(c.s), uint8(0)}}},
				Inputs: []int{0}, Outputs: []int{3},
			}
			per := c.h * c.w * c.ic
			x := make([]float32, c.batch*per)
			for i := range x {
				x[i] = float32(r.NormFloat64()) * float32(1+3*(i/per)) // a wider range for item 2
			}
			outs := map[bool][]float32{}
			for _, on := range []bool{true, false} {
				hybridInt8 = on
				e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
				if err != nil {
					hybridInt8 = true
					t.Fatal(err)
				}
				ip := e.(*Interpreter)
				err = ip.SetBatch(c.batch) // plans again
				hybridInt8 = true
				if err != nil {
					t.Fatal(err)
				}
				if kind := ip.nodes[0].k.(*conv).kind; (kind == "hybrid-s8") != on {
					t.Fatalf("int8 path %v, kernel kind %q", on, kind)
				}
				copy(f32s(ip.Input(0)), x)
				if err := ip.Invoke(context.Background()); err != nil {
					t.Fatal(err)
				}
				outs[on] = append([]float32(nil), f32s(ip.Output(0))...)
			}
			for i, got := range outs[true] {
				b, ch := i/(oh*ow*c.oc), i%c.oc
				lo, hi := 0.0, 0.0
				for _, v := range x[b*per : (b+1)*per] {
					lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
				}
				var sw float64
				fs := fscale[0]
				if c.perChannel {
					fs = fscale[ch]
				}
				for _, v := range filt[ch*c.k*c.k*c.ic : (ch+1)*c.k*c.k*c.ic] {
					sw += math.Abs(float64(int8(v)) * float64(fs))
				}
				bound := (hi-lo)/255/2*sw*1.01 + 1e-5
				if d := math.Abs(float64(got - outs[false][i])); d > bound {
					t.Fatalf("output %d: int8 path %g, float path %g: |Δ| %g over the bound %g", i, got, outs[false][i], d, bound)
				}
			}
		})
	}
}
