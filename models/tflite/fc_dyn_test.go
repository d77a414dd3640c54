package tflite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestFullyConnectedDynamicS8: FULLY_CONNECTED whose int8 weights the graph
// computes (attention) gives exactly the plain loop's bytes,
// clamp(round(Σ(x-zx)(w-zw) + bias)), with zero points on both operands,
// odd sizes, and row counts over and under a Gemm block, at 1 and 2 threads.
func TestFullyConnectedDynamicS8(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct{ rows, in, out, threads int }{
		{1, 5, 3, 1}, {37, 19, 23, 2}, {64, 400, 40, 2}, {17, 32, 400, 1},
	} {
		t.Run(fmt.Sprintf("%dx%dx%d_t%d", c.rows, c.in, c.out, c.threads), func(t *testing.T) {
			const xs, zx, ws, zw, os, zo = 0.05, -9, 0.04, 13, 0.3, -4
			bias := make([]int32, c.out)
			for i := range bias {
				bias[i] = int32(r.IntN(20000) - 10000)
			}
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "x", Type: models.Int8, Shape: []int{c.rows, c.in}, Scale: []float32{xs}, ZeroPoint: []int64{zx}},
					{Name: "w", Type: models.Int8, Shape: []int{c.out, c.in}, Scale: []float32{ws}, ZeroPoint: []int64{zw}},
					{Name: "b", Type: models.Int32, Shape: []int{c.out}, Data: tt.Int32s(bias...)},
					{Name: "y", Type: models.Int8, Shape: []int{c.rows, c.out}, Scale: []float32{os}, ZeroPoint: []int64{zo}},
				},
				Ops:    []tt.Op{{Builtin: int32(OpFullyConnected), Inputs: []int{0, 1, 2}, Outputs: []int{3}}},
				Inputs: []int{0, 1}, Outputs: []int{3},
			}
			e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: c.threads})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			for _, in := range []int{0, 1} {
				b := e.Input(in)
				for i := range b {
					b[i] = byte(r.IntN(256))
				}
				if in == 0 {
					b[0] = 0x80 // -128
				}
			}
			if err := e.Invoke(context.Background()); err != nil {
				t.Fatal(err)
			}
			x, w, got := i8s(e.Input(0)), i8s(e.Input(1)), i8s(e.Output(0))
			q, s := quantizeMultiplier(float64(float32(xs)) * float64(float32(ws)) / float64(float32(os)))
			bad := 0
			for i := 0; i < c.rows; i++ {
				for j := 0; j < c.out; j++ {
					acc := bias[j]
					for k := 0; k < c.in; k++ {
						acc += (int32(x[i*c.in+k]) - zx) * (int32(w[j*c.in+k]) - zw)
					}
					want := int8(clamp32(mbqmRuy(acc, q, s)+zo, -128, 127))
					if got[i*c.out+j] != want {
						bad++
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d outputs differ from the plain loop", bad, c.rows*c.out)
			}
		})
	}
}

// BenchmarkFullyConnectedDynamicS8 runs the attention products of yolo11n
// (FULLY_CONNECTED on int8 weights the graph computes) at one thread:
// 400×400 from depth 32 and 64×400 from depth 400.
func BenchmarkFullyConnectedDynamicS8(b *testing.B) {
	for _, c := range []struct{ rows, in, out int }{{400, 32, 400}, {64, 400, 400}} {
		b.Run(fmt.Sprintf("%dx%dx%d", c.rows, c.in, c.out), func(b *testing.B) {
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "x", Type: models.Int8, Shape: []int{c.rows, c.in}, Scale: []float32{0.05}, ZeroPoint: []int64{-9}},
					{Name: "w", Type: models.Int8, Shape: []int{c.out, c.in}, Scale: []float32{0.04}, ZeroPoint: []int64{13}},
					{Name: "y", Type: models.Int8, Shape: []int{c.rows, c.out}, Scale: []float32{0.3}, ZeroPoint: []int64{-4}},
				},
				Ops:    []tt.Op{{Builtin: int32(OpFullyConnected), Inputs: []int{0, 1}, Outputs: []int{2}}},
				Inputs: []int{0, 1}, Outputs: []int{2},
			}
			e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			b.ReportMetric(float64(benchInvokes(b, e).Microseconds())/1000, "cpu-ms/op")
		})
	}
}
