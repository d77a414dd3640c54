package tflite

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestMaxPoolSeparableExact: the two-pass max pool writes the bytes of the
// one-pass window loop, int8 and float32, same and valid padding, strides
// 1 and 2, with and without a fused activation.
func TestMaxPoolSeparableExact(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	for _, typ := range []models.DType{models.Int8, models.Float32} {
		for _, c := range []struct {
			h, w, ch, k, s int
			pad, act       uint8
		}{{20, 20, 16, 5, 1, padSame, 0}, {9, 7, 3, 3, 2, padValid, 0}, {8, 8, 17, 2, 2, padSame, 0},
			{20, 20, 128, 5, 1, padSame, actRelu}, {11, 13, 67, 3, 1, padValid, actRelu6}, {6, 9, 5, 4, 1, padSame, actReluN1To1}} {
			t.Run(fmt.Sprint(typ, c), func(t *testing.T) {
				oh, _ := padding(c.pad, c.h, c.k, c.s, 1)
				ow, _ := padding(c.pad, c.w, c.k, c.s, 1)
				tensor := func(name string, sh ...int) tt.Tensor {
					tn := tt.Tensor{Name: name, Type: typ, Shape: sh}
					if typ == models.Int8 {
						tn.Scale, tn.ZeroPoint = []float32{0.1}, []int64{3}
					}
					return tn
				}
				m := tt.Model{
					Tensors: []tt.Tensor{tensor("x", 1, c.h, c.w, c.ch), tensor("y", 1, oh, ow, c.ch)},
					Ops:     []tt.Op{{Builtin: int32(OpMaxPool2d), Inputs: []int{0}, Outputs: []int{1}, Options: []any{c.pad, int32(c.s), int32(c.s), int32(c.k), int32(c.k), c.act}}},
					Inputs:  []int{0}, Outputs: []int{1},
				}
				in := make([]byte, c.h*c.w*c.ch*typ.Size())
				for i := range in {
					in[i] = byte(r.IntN(256))
				}
				if typ == models.Float32 {
					f := f32s(in)
					for i := range f {
						f[i] = float32(r.NormFloat64())
					}
				}
				var outs [][]byte
				for _, limit := range []int{1 << 20, 0} {
					maxSepBytes = limit
					e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
					maxSepBytes = 1 << 20
					if err != nil {
						t.Fatal(err)
					}
					if sep := e.(*Interpreter).nodes[0].k.(*pool).rowMax != nil; sep != (limit > 0) {
						t.Fatalf("two-pass %v with limit %d", sep, limit)
					}
					copy(e.Input(0), in)
					if err := e.Invoke(context.Background()); err != nil {
						t.Fatal(err)
					}
					outs = append(outs, bytes.Clone(e.Output(0)))
					e.Close()
				}
				if !bytes.Equal(outs[0], outs[1]) {
					t.Error("two-pass max pool differs from the window loop")
				}
			})
		}
	}
}
