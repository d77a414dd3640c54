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

// runOneOp runs a one-operator model on random input bytes and returns the
// input and the output.
func runOneOp(t *testing.T, r *rand.Rand, m tt.Model, threads int) (in, out []byte) {
	t.Helper()
	e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	in = e.Input(0)
	for i := range in {
		in[i] = byte(r.IntN(256))
	}
	if err := e.Invoke(context.Background()); err != nil {
		t.Fatal(err)
	}
	return in, e.Output(0)
}

// forEachIndex calls f with every index of shape in row-major order.
func forEachIndex(shape []int, f func(idx []int)) {
	idx := make([]int, len(shape))
	for range product(shape) {
		f(idx)
		for i := len(idx) - 1; i >= 0; i-- {
			if idx[i]++; idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
	}
}

// gatherNaive is the output of shape oshape whose element at idx is the
// input's (of shape ishape, es bytes an element) at index src(i, idx[i])
// along each dimension i.
func gatherNaive(in []byte, es int, ishape, oshape []int, src func(i, x int) int) []byte {
	want := make([]byte, product(oshape)*es)
	ist := rowStrides(ishape)
	o := 0
	forEachIndex(oshape, func(idx []int) {
		s := 0
		for i, x := range idx {
			s += src(i, x) * ist[i]
		}
		copy(want[o:o+es], in[s*es:])
		o += es
	})
	return want
}

func offsetOf(idx, strides []int) int {
	o := 0
	for i, x := range idx {
		o += x * strides[i]
	}
	return o
}

// TestPadMatchesNaive: PAD (each output byte written once: the borders
// filled, the input blocks copied) against a per-element walk, for 1- and
// 4-byte elements, zero and non-zero pad values, on 1 and 2 threads.
func TestPadMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, c := range []struct {
		shape, pads []int
	}{
		{[]int{5}, []int{2, 3}},
		{[]int{1, 6, 7, 3}, []int{0, 0, 1, 1, 1, 1, 0, 0}},
		{[]int{1, 6, 7, 3}, []int{0, 0, 0, 2, 1, 0, 0, 0}},
		{[]int{2, 3, 4, 5}, []int{1, 0, 0, 1, 2, 0, 1, 3}},
		{[]int{1, 64, 64, 16}, []int{0, 0, 1, 1, 1, 1, 0, 0}},
	} {
		for _, typ := range []models.DType{models.Int8, models.Float32} {
			t.Run(fmt.Sprint(c.shape, c.pads, typ), func(t *testing.T) {
				oshape := make([]int, len(c.shape))
				p32 := make([]int32, len(c.pads))
				for i := range c.shape {
					oshape[i] = c.shape[i] + c.pads[2*i] + c.pads[2*i+1]
				}
				for i, p := range c.pads {
					p32[i] = int32(p)
				}
				y := tt.Tensor{Name: "y", Type: typ, Shape: oshape}
				x := tt.Tensor{Name: "x", Type: typ, Shape: c.shape}
				fill := make([]byte, typ.Size())
				if typ == models.Int8 {
					x.Scale, x.ZeroPoint = []float32{1}, []int64{-7}
					y.Scale, y.ZeroPoint = []float32{1}, []int64{-7}
					fill[0] = byte(0xf9)
				}
				m := tt.Model{
					Tensors: []tt.Tensor{x, {Name: "p", Type: models.Int32, Shape: []int{len(c.shape), 2}, Data: tt.Int32s(p32...)}, y},
					Ops:     []tt.Op{{Builtin: int32(OpPad), Inputs: []int{0, 1}, Outputs: []int{2}}},
					Inputs:  []int{0}, Outputs: []int{2},
				}
				for _, threads := range []int{1, 2} {
					in, got := runOneOp(t, r, m, threads)
					es := typ.Size()
					want := make([]byte, product(oshape)*es)
					ist, ost := rowStrides(c.shape), rowStrides(oshape)
					forEachIndex(oshape, func(idx []int) {
						o := offsetOf(idx, ost) * es
						src := make([]int, len(idx))
						for i := range idx {
							src[i] = idx[i] - c.pads[2*i]
							if src[i] < 0 || src[i] >= c.shape[i] {
								copy(want[o:o+es], fill)
								return
							}
						}
						s := offsetOf(src, ist) * es
						copy(want[o:o+es], in[s:s+es])
					})
					if !bytes.Equal(got, want) {
						t.Fatalf("%d threads: pad differs from the per-element walk", threads)
					}
				}
			})
		}
	}
}

// TestStridedSliceMatchesNaive: STRIDED_SLICE (runs of 16, 32 and 64 bytes
// as arrays, other runs as copies, strided last dimensions element by
// element) against per-element indexing, on 1 and 2 threads.
func TestStridedSliceMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	for _, c := range []struct {
		shape, begin, end, strides []int
	}{
		{[]int{1, 128, 128, 32}, []int{0, 0, 0, 16}, []int{1, 128, 128, 32}, []int{1, 1, 1, 1}},
		{[]int{1, 20, 20, 64}, []int{0, 0, 0, 0}, []int{1, 20, 20, 32}, []int{1, 1, 1, 1}},
		{[]int{1, 9, 10, 128}, []int{0, 1, 0, 64}, []int{1, 9, 10, 128}, []int{1, 2, 1, 1}},
		{[]int{1, 144, 100}, []int{0, 64, 0}, []int{1, 144, 100}, []int{1, 1, 1}},
		{[]int{2, 7, 9, 5}, []int{1, 6, 8, 4}, []int{0, 0, 1, 0}, []int{-1, -2, -3, -1}},
		{[]int{3, 8, 12}, []int{0, 1, 1}, []int{3, 8, 12}, []int{1, 3, 2}},
		{[]int{40}, []int{3}, []int{37}, []int{1}},
		{[]int{1, 20, 20, 3}, []int{0, 0, 0, 1}, []int{1, 20, 20, 2}, []int{1, 1, 1, 1}},
		{[]int{1, 20, 20, 6}, []int{0, 0, 0, 2}, []int{1, 20, 20, 4}, []int{1, 1, 1, 1}},
		{[]int{1, 20, 20, 12}, []int{0, 0, 0, 4}, []int{1, 20, 20, 12}, []int{1, 1, 1, 1}},
	} {
		for _, typ := range []models.DType{models.Int8, models.Float32} {
			t.Run(fmt.Sprint(c.shape, c.begin, c.end, c.strides, typ), func(t *testing.T) {
				rank := len(c.shape)
				oshape := make([]int, rank)
				for i := range oshape {
					b, e, s := c.begin[i], c.end[i], c.strides[i]
					if s > 0 {
						oshape[i] = (e - b + s - 1) / s
					} else {
						oshape[i] = (b - e - s - 1) / -s
					}
				}
				ints := func(name string, v []int) tt.Tensor {
					v32 := make([]int32, len(v))
					for i, x := range v {
						v32[i] = int32(x)
					}
					return tt.Tensor{Name: name, Type: models.Int32, Shape: []int{len(v)}, Data: tt.Int32s(v32...)}
				}
				x, y := tt.Tensor{Name: "x", Type: typ, Shape: c.shape}, tt.Tensor{Name: "y", Type: typ, Shape: oshape}
				if typ == models.Int8 {
					x.Scale, y.Scale = []float32{1}, []float32{1}
				}
				m := tt.Model{
					Tensors: []tt.Tensor{x, ints("b", c.begin), ints("e", c.end), ints("s", c.strides), y},
					Ops:     []tt.Op{{Builtin: int32(OpStridedSlice), Inputs: []int{0, 1, 2, 3}, Outputs: []int{4}, Options: []any{int32(0), int32(0), int32(0), int32(0), int32(0)}}},
					Inputs:  []int{0}, Outputs: []int{4},
				}
				for _, threads := range []int{1, 2} {
					in, got := runOneOp(t, r, m, threads)
					want := gatherNaive(in, typ.Size(), c.shape, oshape, func(i, x int) int { return c.begin[i] + x*c.strides[i] })
					if !bytes.Equal(got, want) {
						t.Fatalf("%d threads: slice differs from per-element indexing", threads)
					}
				}
			})
		}
	}
}

// TestConcatSplitPackMatchNaive: CONCATENATION along each axis, SPLIT and
// PACK (strided run copies) against per-element indexing.
func TestConcatSplitPackMatchNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	shape := []int{1, 40, 40, 16}
	for axis := range shape {
		t.Run(fmt.Sprint("concat", axis), func(t *testing.T) {
			a, b := append([]int(nil), shape...), append([]int(nil), shape...)
			b[axis] *= 2
			o := append([]int(nil), shape...)
			o[axis] *= 3
			c := tt.Tensor{Name: "c", Type: models.Int8, Shape: b, Scale: []float32{1}, Data: make([]byte, product(b))}
			for i := range c.Data {
				c.Data[i] = byte(r.IntN(256))
			}
			m := tt.Model{
				Tensors: []tt.Tensor{{Name: "x", Type: models.Int8, Shape: a, Scale: []float32{1}}, c, {Name: "y", Type: models.Int8, Shape: o, Scale: []float32{1}}},
				Ops:     []tt.Op{{Builtin: int32(OpConcatenation), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{int32(axis), uint8(0)}}},
				Inputs:  []int{0}, Outputs: []int{2},
			}
			in, got := runOneOp(t, r, m, 2)
			want := make([]byte, product(o))
			ost := rowStrides(o)
			forEachIndex(a, func(idx []int) { want[offsetOf(idx, ost)] = in[offsetOf(idx, rowStrides(a))] })
			forEachIndex(b, func(idx []int) {
				j := append([]int(nil), idx...)
				j[axis] += a[axis]
				want[offsetOf(j, ost)] = c.Data[offsetOf(idx, rowStrides(b))]
			})
			if !bytes.Equal(got, want) {
				t.Fatal("concat differs from per-element indexing")
			}
		})
	}
	t.Run("split", func(t *testing.T) {
		o := []int{1, 40, 40, 8}
		m := tt.Model{
			Tensors: []tt.Tensor{{Name: "a", Type: models.Int32, Shape: []int{1}, Data: tt.Int32s(3)}, {Name: "x", Type: models.Int8, Shape: shape, Scale: []float32{1}},
				{Name: "y0", Type: models.Int8, Shape: o, Scale: []float32{1}}, {Name: "y1", Type: models.Int8, Shape: o, Scale: []float32{1}}},
			Ops:    []tt.Op{{Builtin: int32(OpSplit), Inputs: []int{0, 1}, Outputs: []int{2, 3}, Options: []any{int32(2)}}},
			Inputs: []int{1}, Outputs: []int{3},
		}
		in, got := runOneOp(t, r, m, 1)
		for p := range product(o) {
			if want := in[p/8*16+8+p%8]; got[p] != want {
				t.Fatalf("split [%d] = %d, want %d", p, got[p], want)
			}
		}
	})
	t.Run("pack", func(t *testing.T) {
		c := tt.Tensor{Name: "c", Type: models.Int8, Shape: []int{40, 16}, Scale: []float32{1}, Data: make([]byte, 640)}
		for i := range c.Data {
			c.Data[i] = byte(r.IntN(256))
		}
		m := tt.Model{
			Tensors: []tt.Tensor{{Name: "x", Type: models.Int8, Shape: []int{40, 16}, Scale: []float32{1}}, c, {Name: "y", Type: models.Int8, Shape: []int{40, 2, 16}, Scale: []float32{1}}},
			Ops:     []tt.Op{{Builtin: int32(OpPack), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{int32(2), int32(1)}}},
			Inputs:  []int{0}, Outputs: []int{2},
		}
		in, got := runOneOp(t, r, m, 1)
		for p := range 1280 {
			row, which, j := p/32, p/16%2, p%16
			want := [][]byte{in, c.Data}[which][row*16+j]
			if got[p] != want {
				t.Fatalf("pack [%d] = %d, want %d", p, got[p], want)
			}
		}
	})
}
