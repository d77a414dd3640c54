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

// TestSoftmaxSameOnAnyThreads: a float softmax whose rows are not a
// multiple of 16 long gives the same bytes at 1, 2 and 3 threads.
// kernel.Exp runs a block's last len%16 elements in plain Go, which may
// differ from its vector path in the last bit; the rows are split into
// blocks whose length is a multiple of 16 elements, so those are the
// tensor's last elements whatever the split.
func TestSoftmaxSameOnAnyThreads(t *testing.T) {
	for _, d := range []int{5, 12, 16, 17, 85} {
		t.Run(fmt.Sprintf("row_%d", d), func(t *testing.T) {
			rows := 4000
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "x", Type: models.Float32, Shape: []int{1, rows, d}},
					{Name: "y", Type: models.Float32, Shape: []int{1, rows, d}},
				},
				Ops:    []tt.Op{{Builtin: int32(OpSoftmax), Inputs: []int{0}, Outputs: []int{1}, Options: []any{float32(1)}}},
				Inputs: []int{0}, Outputs: []int{1},
			}
			r := rand.New(rand.NewPCG(7, uint64(d)))
			in := make([]float32, rows*d)
			for i := range in {
				in[i] = r.Float32()*20 - 10
			}
			var first []byte
			for _, threads := range []int{1, 2, 3} {
				e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: threads})
				if err != nil {
					t.Fatal(err)
				}
				copy(f32s(e.Input(0)), in)
				if err := e.Invoke(context.Background()); err != nil {
					t.Fatal(err)
				}
				out := append([]byte(nil), e.Output(0)...)
				e.Close()
				if first == nil {
					first = out
				} else if !bytes.Equal(out, first) {
					t.Fatalf("%d threads give other bytes than 1", threads)
				}
			}
		})
	}
}
