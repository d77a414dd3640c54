package tflite

import (
	"context"
	"math"
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

// TestConcatRequantLUT: a concatenation whose inputs have other scales than
// its output maps every input byte as the float formula does (TFLite's
// reference), through the table made at load.
func TestConcatRequantLUT(t *testing.T) {
	q := func(name string, n int, s float32, zp int64) tt.Tensor {
		return tt.Tensor{Name: name, Type: models.Int8, Shape: []int{1, 2, n}, Scale: []float32{s}, ZeroPoint: []int64{zp}}
	}
	m := tt.Model{
		Tensors: []tt.Tensor{q("a", 128, 0.05, -3), q("b", 128, 0.11, 7), q("y", 256, 0.08, 2)},
		Ops:     []tt.Op{{Builtin: int32(OpConcatenation), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{int32(-1), uint8(0)}}},
		Inputs:  []int{0, 1}, Outputs: []int{2},
	}
	e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for in := range 2 {
		for i := range e.Input(in) {
			e.Input(in)[i] = byte(i) // every byte once over the two rows
		}
	}
	if err := e.Invoke(context.Background()); err != nil {
		t.Fatal(err)
	}
	ip := e.(*Interpreter)
	out := ip.tensors[ip.sg.Outputs[0]]
	for row := range 2 {
		for in, tn := range []*rtensor{ip.tensors[ip.sg.Inputs[0]], ip.tensors[ip.sg.Inputs[1]]} {
			for j := range 128 {
				b := tn.data[row*128+j]
				scale := float32(tn.scale() / out.scale())
				bias := -float32(tn.zp()) * scale
				want := clamp32(int32(math.Round(float64(float32(int8(b))*scale+bias)))+out.zp(), -128, 127)
				if got := int8(out.data[row*256+in*128+j]); int32(got) != want {
					t.Fatalf("row %d input %d byte %d: %d, want %d", row, in, int8(b), got, want)
				}
			}
		}
	}
}
