package tflite

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestDepthwiseS8Mult1Exact: the multiplier-1 int8 depthwise path
// (kernel.DepthwiseS8) writes the same bytes as the plain per-channel
// loop, on odd sizes, strides 1 to 3, dilation, rows without an interior
// column, both paddings, channel counts with
// and without a 16-channel tail, and per-tensor or per-channel scales.
func TestDepthwiseS8Mult1Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, c := range []struct {
		h, w, ch, k, s, d int
		pad               uint8
		perChannel        bool
	}{
		{7, 9, 16, 3, 1, 1, padSame, true},
		{10, 10, 17, 3, 2, 1, padSame, true},
		{9, 7, 48, 3, 2, 1, padValid, false},
		{12, 11, 80, 5, 1, 1, padSame, true},
		{5, 5, 3, 3, 1, 1, padValid, true},
		{6, 3, 33, 5, 1, 1, padSame, true},  // no interior column
		{9, 13, 24, 3, 2, 2, padSame, true}, // dilation
		{8, 8, 40, 3, 3, 1, padSame, false},
	} {
		name := fmt.Sprintf("%dx%dx%d_k%d_s%d_d%d_pad%d", c.h, c.w, c.ch, c.k, c.s, c.d, c.pad)
		t.Run(name, func(t *testing.T) {
			fscale := []float32{0.02}
			if c.perChannel {
				fscale = make([]float32, c.ch)
				for i := range fscale {
					fscale[i] = 0.005 + 0.01*r.Float32()
				}
			}
			bias := make([]int32, c.ch)
			for i := range bias {
				bias[i] = int32(r.IntN(4000) - 2000)
			}
			filt := make([]byte, c.k*c.k*c.ch)
			for i := range filt {
				filt[i] = byte(r.IntN(256))
			}
			in := make([]byte, c.h*c.w*c.ch)
			for i := range in {
				in[i] = byte(r.IntN(256))
			}
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "x", Type: models.Int8, Shape: []int{1, c.h, c.w, c.ch}, Scale: []float32{0.03}, ZeroPoint: []int64{-7}},
					{Name: "f", Type: models.Int8, Shape: []int{1, c.k, c.k, c.ch}, Data: filt, Scale: fscale, Axis: 3},
					{Name: "b", Type: models.Int32, Shape: []int{c.ch}, Data: tt.Int32s(bias...)},
					{Name: "y", Type: models.Int8, Shape: []int{1, 0, 0, c.ch}, Scale: []float32{0.15}, ZeroPoint: []int64{3}},
				},
				Ops: []tt.Op{{Builtin: int32(OpDepthwiseConv2d), Inputs: []int{0, 1, 2}, Outputs: []int{3},
					Options: []any{c.pad, int32(c.s), int32(c.s), int32(1), uint8(0), int32(c.d), int32(c.d)}}},
				Inputs: []int{0}, Outputs: []int{3},
			}
			oh, _ := padding(c.pad, c.h, c.k, c.s, c.d)
			ow, _ := padding(c.pad, c.w, c.k, c.s, c.d)
			m.Tensors[3].Shape = []int{1, oh, ow, c.ch}
			e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			ip := e.(*Interpreter)
			copy(ip.Input(0), in)
			cv := ip.nodes[0].k.(*conv)
			if cv.filterW == nil {
				t.Fatal("multiplier 1 did not take the kernel path")
			}
			if err := ip.Invoke(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := bytes.Clone(ip.Output(0))
			cv.filterW = nil // the plain loop
			if err := ip.Invoke(context.Background()); err != nil {
				t.Fatal(err)
			}
			if want := ip.Output(0); !bytes.Equal(got, want) {
				n := 0
				for i := range got {
					if got[i] != want[i] {
						n++
					}
				}
				t.Errorf("%d of %d output bytes differ from the plain loop", n, len(got))
			}
		})
	}
}

// TestDepthwiseF32Mult1: float depthwise (multiplier 1, kernel path)
// against a float64 reference, with padding, stride 2 and a channel tail.
func TestDepthwiseF32Mult1(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, c := range []struct{ h, w, ch, k, s int }{{7, 9, 17, 3, 1}, {10, 8, 32, 5, 2}} {
		oh, pt := padding(padSame, c.h, c.k, c.s, 1)
		ow, pl := padding(padSame, c.w, c.k, c.s, 1)
		filt, bias, x := make([]float32, c.k*c.k*c.ch), make([]float32, c.ch), make([]float32, c.h*c.w*c.ch)
		for _, s := range [][]float32{filt, bias, x} {
			for i := range s {
				s[i] = float32(r.NormFloat64())
			}
		}
		m := tt.Model{
			Tensors: []tt.Tensor{
				{Name: "x", Type: models.Float32, Shape: []int{1, c.h, c.w, c.ch}},
				{Name: "f", Type: models.Float32, Shape: []int{1, c.k, c.k, c.ch}, Data: tt.Float32s(filt...)},
				{Name: "b", Type: models.Float32, Shape: []int{c.ch}, Data: tt.Float32s(bias...)},
				{Name: "y", Type: models.Float32, Shape: []int{1, oh, ow, c.ch}},
			},
			Ops: []tt.Op{{Builtin: int32(OpDepthwiseConv2d), Inputs: []int{0, 1, 2}, Outputs: []int{3},
				Options: []any{uint8(padSame), int32(c.s), int32(c.s), int32(1), uint8(0)}}},
			Inputs: []int{0}, Outputs: []int{3},
		}
		e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		copy(f32s(e.Input(0)), x)
		if err := e.Invoke(context.Background()); err != nil {
			t.Fatal(err)
		}
		y := f32s(e.Output(0))
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				for ch := 0; ch < c.ch; ch++ {
					want := float64(bias[ch])
					for ky := 0; ky < c.k; ky++ {
						for kx := 0; kx < c.k; kx++ {
							iy, ix := oy*c.s-pt+ky, ox*c.s-pl+kx
							if iy >= 0 && iy < c.h && ix >= 0 && ix < c.w {
								want += float64(x[(iy*c.w+ix)*c.ch+ch]) * float64(filt[(ky*c.k+kx)*c.ch+ch])
							}
						}
					}
					if got := y[(oy*ow+ox)*c.ch+ch]; math.Abs(float64(got)-want) > 1e-4 {
						t.Fatalf("%v: y[%d,%d,%d] = %g, want %g", c, oy, ox, ch, got, want)
					}
				}
			}
		}
		e.Close()
	}
}
