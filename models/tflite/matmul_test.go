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

// TestBatchMatmulFloat: BATCH_MATMUL against a float64 reference for every
// adjoint combination, odd sizes, and a batch dimension broadcast from 1.
func TestBatchMatmulFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	const m, kd, nn = 5, 13, 7
	for _, adj := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("adjX=%v,adjY=%v", adj[0], adj[1]), func(t *testing.T) {
			xs, ys := []int{2, m, kd}, []int{1, kd, nn}
			if adj[0] {
				xs = []int{2, kd, m}
			}
			if adj[1] {
				ys = []int{1, nn, kd}
			}
			mdl := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "x", Type: models.Float32, Shape: xs},
					{Name: "y", Type: models.Float32, Shape: ys},
					{Name: "z", Type: models.Float32, Shape: []int{2, m, nn}},
				},
				Ops:    []tt.Op{{Builtin: int32(OpBatchMatmul), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{adj[0], adj[1]}}},
				Inputs: []int{0, 1}, Outputs: []int{2},
			}
			e, err := Open(context.Background(), tt.Build(mdl), models.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			x, y := f32s(e.Input(0)), f32s(e.Input(1))
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			for i := range y {
				y[i] = float32(r.NormFloat64())
			}
			if err := e.Invoke(context.Background()); err != nil {
				t.Fatal(err)
			}
			z := f32s(e.Output(0))
			for b := 0; b < 2; b++ {
				for i := 0; i < m; i++ {
					for j := 0; j < nn; j++ {
						var want float64
						for k := 0; k < kd; k++ {
							av := x[b*m*kd+i*kd+k]
							if adj[0] {
								av = x[b*m*kd+k*m+i]
							}
							bv := y[k*nn+j]
							if adj[1] {
								bv = y[j*kd+k]
							}
							want += float64(av) * float64(bv)
						}
						if got := z[(b*m+i)*nn+j]; math.Abs(float64(got)-want) > 1e-5*(1+math.Abs(want)) {
							t.Fatalf("z[%d,%d,%d] = %g, want %g", b, i, j, got, want)
						}
					}
				}
			}
		})
	}
}
