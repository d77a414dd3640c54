package tflite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestBinaryFloat: float ADD, SUB and MUL (contiguous runs take the typed
// loops) and LESS, same-shape and broadcast, with RELU6 fused, against
// plain arithmetic.
func TestBinaryFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	const relu6 = 3
	for _, c := range []struct {
		op     BuiltinOp
		bshape []int
		f      func(a, b float32) float32
	}{
		{OpAdd, []int{2, 3, 5}, func(a, b float32) float32 { return a + b }},
		{OpSub, []int{1, 1, 5}, func(a, b float32) float32 { return a - b }},
		{OpMul, []int{2, 1, 5}, func(a, b float32) float32 { return a * b }},
		{OpSub, []int{1, 1, 1}, func(a, b float32) float32 { return a - b }}, // one value: arithF32Scalar
		{OpAdd, []int{1, 1, 1}, func(a, b float32) float32 { return a + b }},
		{OpLess, []int{2, 3, 5}, func(a, b float32) float32 {
			if a < b {
				return 1
			}
			return 0
		}},
	} {
		t.Run(fmt.Sprint(c.op, c.bshape), func(t *testing.T) {
			otyp, opts := models.Float32, []any{uint8(relu6)}
			if c.op == OpLess {
				otyp, opts = models.Bool, nil
			}
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "a", Type: models.Float32, Shape: []int{2, 3, 5}},
					{Name: "b", Type: models.Float32, Shape: c.bshape},
					{Name: "y", Type: otyp, Shape: []int{2, 3, 5}},
				},
				Ops:    []tt.Op{{Builtin: int32(c.op), Inputs: []int{0, 1}, Outputs: []int{2}, Options: opts}},
				Inputs: []int{0, 1}, Outputs: []int{2},
			}
			e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			a, b := f32s(e.Input(0)), f32s(e.Input(1))
			for _, s := range [][]float32{a, b} {
				for i := range s {
					s[i] = float32(r.NormFloat64() * 4)
				}
			}
			if err := e.Invoke(context.Background()); err != nil {
				t.Fatal(err)
			}
			bst := rowStrides(c.bshape)
			for i := 0; i < 30; i++ {
				i0, i1, i2 := i/15, i/5%3, i%5
				bi := 0
				for d, x := range []int{i0, i1, i2} {
					if c.bshape[d] > 1 {
						bi += x * bst[d]
					}
				}
				want := c.f(a[i], b[bi])
				var got float32
				if c.op == OpLess {
					got = float32(e.Output(0)[i])
				} else {
					want = min(max(want, 0), 6)
					got = f32s(e.Output(0))[i]
				}
				if got != want {
					t.Fatalf("y[%d] = %g, want %g", i, got, want)
				}
			}
		})
	}
}
