package tflite

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// runOne builds a one-operator model, sets its float input x (when given)
// and invokes it.
func runOne(t *testing.T, m tt.Model, x []float32) (*Interpreter, error) {
	t.Helper()
	e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ip := e.(*Interpreter)
	copy(f32s(ip.Input(0)), x)
	return ip, ip.Invoke(context.Background())
}

// TestGroupedConvFloat: float grouped convolutions (one input channel per
// group, as yolo26n's, and wider groups) equal bit for bit a direct loop
// that sums each output channel's bias and products in (ky, kx, ic) order.
func TestGroupedConvFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, c := range []struct {
		h, w, ic, oc, groups, k, s int
		pad                        uint8
		act                        uint8
	}{
		{5, 6, 8, 8, 8, 3, 1, padSame, 0},
		{7, 5, 8, 16, 8, 3, 2, padSame, 1},
		{6, 6, 8, 12, 2, 3, 1, padValid, 3},
		{4, 4, 6, 6, 3, 1, 1, padValid, 0},
	} {
		t.Run(fmt.Sprintf("%dx%dx%d_oc%d_g%d_k%d_s%d", c.h, c.w, c.ic, c.oc, c.groups, c.k, c.s), func(t *testing.T) {
			icg, ocg := c.ic/c.groups, c.oc/c.groups
			filt, bias := make([]float32, c.oc*c.k*c.k*icg), make([]float32, c.oc)
			for i := range filt {
				filt[i] = float32(r.NormFloat64())
			}
			for i := range bias {
				bias[i] = float32(r.NormFloat64())
			}
			x := make([]float32, c.h*c.w*c.ic)
			for i := range x {
				x[i] = float32(r.NormFloat64() * 3)
			}
			oh, pt := padding(c.pad, c.h, c.k, c.s, 1)
			ow, pl := padding(c.pad, c.w, c.k, c.s, 1)
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "x", Type: models.Float32, Shape: []int{1, c.h, c.w, c.ic}},
					{Name: "f", Type: models.Float32, Shape: []int{c.oc, c.k, c.k, icg}, Data: tt.Float32s(filt...)},
					{Name: "b", Type: models.Float32, Shape: []int{c.oc}, Data: tt.Float32s(bias...)},
					{Name: "y", Type: models.Float32, Shape: []int{1, oh, ow, c.oc}},
				},
				Ops: []tt.Op{{Builtin: int32(OpConv2d), Inputs: []int{0, 1, 2}, Outputs: []int{3},
					Options: []any{c.pad, int32(c.s), int32(c.s), c.act}}},
				Inputs: []int{0}, Outputs: []int{3},
			}
			ip, err := runOne(t, m, x)
			if err != nil {
				t.Fatal(err)
			}
			if kind := ip.nodes[0].k.(*conv).kind; kind != "grouped" {
				t.Fatalf("kernel kind %q, want grouped", kind)
			}
			lo, hi := actFloat(c.act)
			y := f32s(ip.Output(0))
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for oc := 0; oc < c.oc; oc++ {
						s := bias[oc]
						for ky := 0; ky < c.k; ky++ {
							for kx := 0; kx < c.k; kx++ {
								iy, ix := oy*c.s-pt+ky, ox*c.s-pl+kx
								if iy < 0 || iy >= c.h || ix < 0 || ix >= c.w {
									continue
								}
								for i := 0; i < icg; i++ {
									s += x[(iy*c.w+ix)*c.ic+(oc/ocg)*icg+i] * filt[((oc*c.k+ky)*c.k+kx)*icg+i]
								}
							}
						}
						want := min(max(s, lo), hi)
						if got := y[(oy*ow+ox)*c.oc+oc]; math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("y[%d,%d,%d] = %g, want %g", oy, ox, oc, got, want)
						}
					}
				}
			}
		})
	}
}

// TestGatherNDFloat: GATHER_ND with full-depth int32 indices (rows of one
// element), partial-depth int64 ones (rows of several), and an index out of
// range, which fails the invoke.
func TestGatherNDFloat(t *testing.T) {
	p := make([]float32, 3*4*5)
	for i := range p {
		p[i] = float32(i) + 0.5
	}
	for _, c := range []struct {
		name  string
		idx   tt.Tensor
		shape []int
		want  []float32
		err   string
	}{
		{"full-int32", tt.Tensor{Type: models.Int32, Shape: []int{3, 3}, Data: tt.Int32s(0, 0, 0, 2, 3, 4, 1, 2, 3)},
			[]int{3}, []float32{0.5, 59.5, 33.5}, ""},
		{"rows-int64", tt.Tensor{Type: models.Int64, Shape: []int{2, 2}, Data: int64Bytes(2, 1, 0, 3)},
			[]int{2, 5}, []float32{45.5, 46.5, 47.5, 48.5, 49.5, 15.5, 16.5, 17.5, 18.5, 19.5}, ""},
		{"out-of-range", tt.Tensor{Type: models.Int32, Shape: []int{1, 3}, Data: tt.Int32s(0, 4, 0)},
			[]int{1}, nil, "out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.idx.Name = "i"
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "p", Type: models.Float32, Shape: []int{3, 4, 5}},
					c.idx,
					{Name: "y", Type: models.Float32, Shape: c.shape},
				},
				Ops:    []tt.Op{{Builtin: int32(OpGatherNd), Inputs: []int{0, 1}, Outputs: []int{2}}},
				Inputs: []int{0}, Outputs: []int{2},
			}
			ip, err := runOne(t, m, p)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("invoke: %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f32s(ip.Output(0)); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func int64Bytes(v ...int64) []byte {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		for s := 0; s < 64; s += 8 {
			b = append(b, byte(x>>s))
		}
	}
	return b
}

// TestReduceSpanFloat: SUM, MEAN and REDUCE_MAX over runs of adjacent axes
// (the strided pass) and over axes apart (the general loop) equal a float64
// sum in input order, and the max with Go's max, bit for bit.
func TestReduceSpanFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	shape := []int{3, 5, 7}
	x := make([]float32, 3*5*7)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 100)
	}
	x[3] = float32(math.Copysign(0, -1))
	for _, op := range []BuiltinOp{OpSum, OpMean, OpReduceMax} {
		for _, axes := range [][]int32{{1}, {1, 2}, {0}, {2}, {0, 2}} {
			t.Run(fmt.Sprint(op, axes), func(t *testing.T) {
				var oshape []int
				red := make([]bool, 3)
				for _, a := range axes {
					red[a] = true
				}
				for i, d := range shape {
					if !red[i] {
						oshape = append(oshape, d)
					}
				}
				m := tt.Model{
					Tensors: []tt.Tensor{
						{Name: "x", Type: models.Float32, Shape: shape},
						{Name: "ax", Type: models.Int32, Shape: []int{len(axes)}, Data: tt.Int32s(axes...)},
						{Name: "y", Type: models.Float32, Shape: oshape},
					},
					Ops:    []tt.Op{{Builtin: int32(op), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{false}}},
					Inputs: []int{0}, Outputs: []int{2},
				}
				ip, err := runOne(t, m, x)
				if err != nil {
					t.Fatal(err)
				}
				y := f32s(ip.Output(0))
				acc := make([]float64, len(y))
				seen := make([]bool, len(y))
				for i, v := range x {
					c := [3]int{i / 35, i / 7 % 5, i % 7}
					o := 0
					for d := 0; d < 3; d++ {
						if !red[d] {
							o = o*shape[d] + c[d]
						}
					}
					switch {
					case op == OpReduceMax && !seen[o]:
						acc[o] = float64(v)
					case op == OpReduceMax:
						acc[o] = max(acc[o], float64(v))
					default:
						acc[o] += float64(v)
					}
					seen[o] = true
				}
				for o, v := range acc {
					if op == OpMean {
						v /= float64(len(x) / len(y))
					}
					if want := float32(v); math.Float32bits(y[o]) != math.Float32bits(want) {
						t.Fatalf("y[%d] = %g, want %g", o, y[o], want)
					}
				}
			})
		}
	}
}
