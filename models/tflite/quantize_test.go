package tflite

import (
	"context"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestQuantizeRequantLUT: 8-bit to 8-bit QUANTIZE (a table made at load)
// gives, for every input byte, the fixed-point requantization TFLite does.
func TestQuantizeRequantLUT(t *testing.T) {
	for _, c := range []struct {
		in, out models.DType
		is, os  float32
		iz, oz  int64
	}{
		{models.Int8, models.Int8, 0.05, 0.031, -3, 11},
		{models.UInt8, models.Int8, 0.02, 0.1, 128, -5},
		{models.Int8, models.UInt8, 0.3, 0.07, 0, 120},
	} {
		m := tt.Model{
			Tensors: []tt.Tensor{
				{Name: "x", Type: c.in, Shape: []int{1, 256}, Scale: []float32{c.is}, ZeroPoint: []int64{c.iz}},
				{Name: "y", Type: c.out, Shape: []int{1, 256}, Scale: []float32{c.os}, ZeroPoint: []int64{c.oz}},
			},
			Ops:    []tt.Op{{Builtin: int32(OpQuantize), Inputs: []int{0}, Outputs: []int{1}}},
			Inputs: []int{0}, Outputs: []int{1},
		}
		e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		ip := e.(*Interpreter)
		for i := range ip.Input(0) {
			ip.Input(0)[i] = byte(i)
		}
		if err := ip.Invoke(context.Background()); err != nil {
			t.Fatal(err)
		}
		q, s := quantizeMultiplier(float64(c.is) / float64(c.os))
		lo, hi := qRange(c.out)
		for b, got := range ip.Output(0) {
			x := int32(b)
			if c.in == models.Int8 {
				x = int32(int8(b))
			}
			if want := byte(clamp32(mbqm(x-int32(c.iz), q, s)+int32(c.oz), lo, hi)); got != want {
				t.Errorf("%s→%s: input byte %d gives %d, want %d", c.in, c.out, b, got, want)
			}
		}
	}
}
