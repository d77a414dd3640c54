package tflite

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// tileRef is TILE one element at a time: each output index taken back to
// the input index modulo the input's shape.
func tileRef(out, in []byte, shape, mult []int, es int) {
	oshape := make([]int, len(shape))
	for i := range shape {
		oshape[i] = shape[i] * mult[i]
	}
	ist, ost := rowStrides(shape), rowStrides(oshape)
	total := 1
	for _, d := range oshape {
		total *= d
	}
	for o := range total {
		src, rem := 0, o
		for i := range shape {
			c := rem / ost[i]
			rem %= ost[i]
			src += (c % shape[i]) * ist[i]
		}
		copy(out[o*es:(o+1)*es], in[src*es:(src+1)*es])
	}
}

// TestTile: tileDim's whole-block copies give the bytes of the element by
// element tiling, for ranks 0 to 5, multiples 1 to 4 on every dimension and
// one- and four-byte elements.
func TestTile(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 7))
	for i := range 300 {
		rank, es := i%6, 1+3*(i/6%2)
		shape, mult := make([]int, rank), make([]int, rank)
		in, outN := 1, 1
		for d := range rank {
			shape[d], mult[d] = 1+r.IntN(4), 1+r.IntN(4)
			in, outN = in*shape[d], outN*shape[d]*mult[d]
		}
		src := make([]byte, in*es)
		for j := range src {
			src[j] = byte(r.IntN(256))
		}
		got, want := make([]byte, outN*es), make([]byte, outN*es)
		tileRef(want, src, shape, mult, es)
		_, w := tileDim(got, src, shape, mult, es)
		if w != len(want) || string(got) != string(want) {
			t.Fatalf("shape %v multiples %v (%d-byte elements): wrote %d bytes, %x, want %x", shape, mult, es, w, got, want)
		}
	}
}

// BenchmarkTile tiles YOLO26's 1x1x80 class row 300 times, as its
// end-to-end head does, and a 1x20x4 block 3x2 times.
func BenchmarkTile(b *testing.B) {
	for _, c := range []struct{ shape, mult []int }{
		{[]int{1, 1, 80}, []int{1, 300, 1}},
		{[]int{1, 20, 4}, []int{3, 2, 1}},
	} {
		in, out := 4, 4
		for d := range c.shape {
			in, out = in*c.shape[d], out*c.shape[d]*c.mult[d]
		}
		src, dst := make([]byte, in), make([]byte, out)
		b.Run(fmt.Sprintf("%v×%v", c.shape, c.mult), func(b *testing.B) {
			b.SetBytes(int64(out))
			for b.Loop() {
				tileDim(dst, src, c.shape, c.mult, 4)
			}
		})
	}
}
