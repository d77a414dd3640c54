package tflite

import (
	"context"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// BenchmarkShapeOps runs single operators of the shapes the YOLO networks
// spend their non-convolution time in (issue #15's per-op profile), on one
// thread, reporting CPU time per invoke as well (meaningful on a busy
// machine).
func BenchmarkShapeOps(b *testing.B) {
	q := func(name string, typ models.DType, shape ...int) tt.Tensor {
		t := tt.Tensor{Name: name, Type: typ, Shape: shape}
		if typ == models.Int8 {
			t.Scale, t.ZeroPoint = []float32{0.1}, []int64{-3}
		}
		return t
	}
	ints := func(name string, v ...int32) tt.Tensor {
		return tt.Tensor{Name: name, Type: models.Int32, Shape: []int{len(v)}, Data: tt.Int32s(v...)}
	}
	smOut := func(typ models.DType, shape ...int) tt.Tensor {
		t := tt.Tensor{Name: "y", Type: typ, Shape: shape}
		if typ == models.Int8 {
			t.Scale, t.ZeroPoint = []float32{1.0 / 256}, []int64{-128}
		}
		return t
	}
	softmax := func(typ models.DType, shape ...int) tt.Model {
		return tt.Model{Tensors: []tt.Tensor{q("x", typ, shape...), smOut(typ, shape...)},
			Ops:    []tt.Op{{Builtin: int32(OpSoftmax), Inputs: []int{0}, Outputs: []int{1}, Options: []any{float32(1)}}},
			Inputs: []int{0}, Outputs: []int{1}}
	}
	transpose := func(typ models.DType) tt.Model {
		return tt.Model{Tensors: []tt.Tensor{q("x", typ, 1, 80, 80, 144), ints("p", 0, 3, 1, 2), q("y", typ, 1, 144, 80, 80)},
			Ops:    []tt.Op{{Builtin: int32(OpTranspose), Inputs: []int{0, 1}, Outputs: []int{2}}},
			Inputs: []int{0}, Outputs: []int{2}}
	}
	maxpool := func(typ models.DType) tt.Model {
		return tt.Model{Tensors: []tt.Tensor{q("x", typ, 1, 20, 20, 128), q("y", typ, 1, 20, 20, 128)},
			Ops:    []tt.Op{{Builtin: int32(OpMaxPool2d), Inputs: []int{0}, Outputs: []int{1}, Options: []any{uint8(padSame), int32(1), int32(1), int32(5), int32(5), uint8(0)}}},
			Inputs: []int{0}, Outputs: []int{1}}
	}
	concat := func(typ models.DType) tt.Model {
		return tt.Model{Tensors: []tt.Tensor{q("a", typ, 1, 160, 160, 16), q("b", typ, 1, 160, 160, 16), q("c", typ, 1, 160, 160, 16), q("y", typ, 1, 160, 160, 48)},
			Ops:    []tt.Op{{Builtin: int32(OpConcatenation), Inputs: []int{0, 1, 2}, Outputs: []int{3}, Options: []any{int32(3), uint8(0)}}},
			Inputs: []int{0, 1, 2}, Outputs: []int{3}}
	}
	concat2 := func(typ models.DType) tt.Model {
		return tt.Model{Tensors: []tt.Tensor{q("a", typ, 1, 40, 40, 128), q("b", typ, 1, 40, 40, 128), q("y", typ, 1, 40, 40, 256)},
			Ops:    []tt.Op{{Builtin: int32(OpConcatenation), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{int32(3), uint8(0)}}},
			Inputs: []int{0, 1}, Outputs: []int{2}}
	}
	slice := func(typ models.DType) tt.Model {
		return tt.Model{Tensors: []tt.Tensor{q("x", typ, 1, 160, 160, 32), ints("b", 0, 0, 0, 16), ints("e", 1, 160, 160, 32), ints("s", 1, 1, 1, 1), q("y", typ, 1, 160, 160, 16)},
			Ops:    []tt.Op{{Builtin: int32(OpStridedSlice), Inputs: []int{0, 1, 2, 3}, Outputs: []int{4}, Options: []any{int32(0), int32(0), int32(0), int32(0), int32(0)}}},
			Inputs: []int{0}, Outputs: []int{4}}
	}
	pad := func(typ models.DType, h, c int) tt.Model {
		return tt.Model{Tensors: []tt.Tensor{q("x", typ, 1, h, h, c), {Name: "p", Type: models.Int32, Shape: []int{4, 2}, Data: tt.Int32s(0, 0, 1, 1, 1, 1, 0, 0)}, q("y", typ, 1, h+2, h+2, c)},
			Ops:    []tt.Op{{Builtin: int32(OpPad), Inputs: []int{0, 1}, Outputs: []int{2}}},
			Inputs: []int{0}, Outputs: []int{2}}
	}
	for _, c := range []struct {
		name string
		m    tt.Model
	}{
		{"softmax_int8_dfl_1x4x8400x16", softmax(models.Int8, 1, 4, 8400, 16)},
		{"softmax_int8_attn_1x2x400x400", softmax(models.Int8, 1, 2, 400, 400)},
		{"softmax_f32_dfl_1x4x8400x16", softmax(models.Float32, 1, 4, 8400, 16)},
		{"transpose_int8_80x80x144", transpose(models.Int8)},
		{"transpose_f32_80x80x144", transpose(models.Float32)},
		{"maxpool5_int8_20x20x128", maxpool(models.Int8)},
		{"maxpool5_f32_20x20x128", maxpool(models.Float32)},
		{"concat_int8_3x160x160x16", concat(models.Int8)},
		{"concat_f32_3x160x160x16", concat(models.Float32)},
		{"concat_f32_2x40x40x128", concat2(models.Float32)},
		{"slice_int8_160x160x32to16", slice(models.Int8)},
		{"slice_f32_160x160x32to16", slice(models.Float32)},
		{"pad_f32_640x640x3", pad(models.Float32, 640, 3)},
		{"pad_int8_320x320x16", pad(models.Int8, 320, 16)},
		{"pad_int8_640x640x3", pad(models.Int8, 640, 3)},
	} {
		b.Run(c.name, func(b *testing.B) {
			e, err := Open(context.Background(), tt.Build(c.m), models.Options{Threads: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			for i := range e.Inputs() {
				in := e.Input(i)
				for j := range in {
					in[j] = byte(j * 7 % 251)
				}
			}
			b.ReportMetric(float64(benchInvokes(b, e).Nanoseconds())/1000, "cpu-us/op")
		})
	}
}
