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

// TestTransposeMatchesNaive: TRANSPOSE (tiled 2-D where the permutation
// allows, the general walk elsewhere) against element-by-element indexing,
// on every permutation of rank-3 and rank-4 shapes with size-1 dimensions,
// for 1- and 4-byte elements.
func TestTransposeMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, shape := range [][]int{{2, 3, 4}, {1, 33, 40}, {1, 3, 1, 5}, {2, 35, 3, 37}} {
		for _, perm := range perms(len(shape)) {
			for _, typ := range []models.DType{models.Int8, models.Float32} {
				t.Run(fmt.Sprint(shape, perm, typ), func(t *testing.T) {
					oshape := make([]int, len(perm))
					for i, p := range perm {
						oshape[i] = shape[p]
					}
					p32 := make([]int32, len(perm))
					for i, p := range perm {
						p32[i] = int32(p)
					}
					tensor := func(name string, sh []int) tt.Tensor {
						tn := tt.Tensor{Name: name, Type: typ, Shape: sh}
						if typ == models.Int8 {
							tn.Scale, tn.ZeroPoint = []float32{1}, []int64{0}
						}
						return tn
					}
					m := tt.Model{
						Tensors: []tt.Tensor{tensor("x", shape), {Name: "p", Type: models.Int32, Shape: []int{len(perm)}, Data: tt.Int32s(p32...)}, tensor("y", oshape)},
						Ops:     []tt.Op{{Builtin: int32(OpTranspose), Inputs: []int{0, 1}, Outputs: []int{2}}},
						Inputs:  []int{0}, Outputs: []int{2},
					}
					e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 1})
					if err != nil {
						t.Fatal(err)
					}
					defer e.Close()
					in := e.Input(0)
					for i := range in {
						in[i] = byte(r.IntN(256))
					}
					if err := e.Invoke(context.Background()); err != nil {
						t.Fatal(err)
					}
					es := typ.Size()
					want := make([]byte, len(in))
					ist := rowStrides(shape)
					idx := make([]int, len(oshape))
					for o := 0; o < len(in)/es; o++ {
						src := 0
						for i, p := range perm {
							src += idx[i] * ist[p]
						}
						copy(want[o*es:(o+1)*es], in[src*es:(src+1)*es])
						for i := len(idx) - 1; i >= 0; i-- {
							if idx[i]++; idx[i] < oshape[i] {
								break
							}
							idx[i] = 0
						}
					}
					if !bytes.Equal(e.Output(0), want) {
						t.Errorf("transpose differs from naive indexing")
					}
				})
			}
		}
	}
}

func perms(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range perms(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}
