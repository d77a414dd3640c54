package tflite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestReduceMaxMinFloat: float REDUCE_MAX and REDUCE_MIN over the last axis
// (the one-pass row path) and over a middle axis (the general loop) against
// a plain loop.
func TestReduceMaxMinFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	const a, b, c = 3, 5, 7
	x := make([]float32, a*b*c)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for _, op := range []BuiltinOp{OpReduceMax, OpReduceMin} {
		for _, axis := range []int{2, 1} {
			t.Run(fmt.Sprint(op, axis), func(t *testing.T) {
				oshape := []int{a, b}
				if axis == 1 {
					oshape = []int{a, c}
				}
				m := tt.Model{
					Tensors: []tt.Tensor{
						{Name: "x", Type: models.Float32, Shape: []int{a, b, c}},
						{Name: "ax", Type: models.Int32, Shape: []int{1}, Data: tt.Int32s(int32(axis))},
						{Name: "y", Type: models.Float32, Shape: oshape},
					},
					Ops:    []tt.Op{{Builtin: int32(op), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{false}}},
					Inputs: []int{0}, Outputs: []int{2},
				}
				e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				copy(f32s(e.Input(0)), x)
				if err := e.Invoke(context.Background()); err != nil {
					t.Fatal(err)
				}
				y := f32s(e.Output(0))
				for i := 0; i < a; i++ {
					for j := 0; j < len(y)/a; j++ {
						var want float32
						for k := 0; k < 7; k++ {
							var v float32
							switch {
							case axis == 2 && k < c:
								v = x[(i*b+j)*c+k]
							case axis == 1 && k < b:
								v = x[(i*b+k)*c+j]
							default:
								continue
							}
							if k == 0 || (op == OpReduceMax && v > want) || (op == OpReduceMin && v < want) {
								want = v
							}
						}
						if got := y[i*len(y)/a+j]; got != want {
							t.Fatalf("y[%d,%d] = %g, want %g", i, j, got, want)
						}
					}
				}
			})
		}
	}
}
