package tflite_test

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"os"
	"strings"
	"testing"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	"edgefleet/models/tflite"
	tt "edgefleet/models/tflite/tflitetest"
)

func run(t *testing.T, m tt.Model, inputs ...[]byte) [][]byte {
	t.Helper()
	e, err := tflite.Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i, in := range inputs {
		if len(e.Input(i)) != len(in) {
			t.Fatalf("input %d: %d bytes, tensor has %d", i, len(in), len(e.Input(i)))
		}
		copy(e.Input(i), in)
	}
	if err := e.Invoke(context.Background()); err != nil {
		t.Fatal(err)
	}
	var outs [][]byte
	for i := range e.Outputs() {
		outs = append(outs, append([]byte(nil), e.Output(i)...))
	}
	return outs
}

func randInt8(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Intn(256))
	}
	return b
}

func deq(b byte, s float32, zp int64) float64 { return float64(s) * float64(int64(int8(b))-zp) }

func quant(v float64, s float32, zp int64) int8 {
	q := math.Round(v/float64(s)) + float64(zp)
	return int8(max(-128, min(127, q)))
}

// within1 checks quantized outputs against a float reference: TFLite's
// fixed-point arithmetic may round differently by one step, never more.
func within1(t *testing.T, what string, got []byte, want []int8) {
	t.Helper()
	bad := 0
	for i := range want {
		d := int(int8(got[i])) - int(want[i])
		if d < -1 || d > 1 {
			if bad < 5 {
				t.Errorf("%s[%d] = %d, want %d±1", what, i, int8(got[i]), want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements off by more than one step", what, bad, len(want))
	}
}

func TestAddMulInt8(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	const n = 64
	for _, c := range []struct {
		name string
		op   int32
		f    func(a, b float64) float64
	}{
		{"add", int32(tflite.OpAdd), func(a, b float64) float64 { return a + b }},
		{"sub", int32(tflite.OpSub), func(a, b float64) float64 { return a - b }},
		{"mul", int32(tflite.OpMul), func(a, b float64) float64 { return a * b }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := randInt8(r, n), randInt8(r, 1) // broadcast a scalar
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "a", Type: models.Int8, Shape: []int{1, 4, 4, 4}, Scale: []float32{0.05}, ZeroPoint: []int64{3}},
					{Name: "b", Type: models.Int8, Shape: []int{1}, Scale: []float32{0.02}, ZeroPoint: []int64{-5}},
					{Name: "y", Type: models.Int8, Shape: []int{1, 4, 4, 4}, Scale: []float32{0.1}, ZeroPoint: []int64{-2}},
				},
				Ops:    []tt.Op{{Builtin: c.op, Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{uint8(0)}}},
				Inputs: []int{0, 1}, Outputs: []int{2},
			}
			got := run(t, m, a, b)[0]
			want := make([]int8, n)
			for i := range want {
				want[i] = quant(c.f(deq(a[i], 0.05, 3), deq(b[0], 0.02, -5)), 0.1, -2)
			}
			within1(t, c.name, got, want)
		})
	}
}

// naiveConv is a float reference for an NHWC convolution with OHWI filters.
func TestConv2DInt8(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, c := range []struct {
		name               string
		h, w, ic, oc, k, s int
		pad                uint8
		depthwise          bool
	}{
		{"3x3s1same", 7, 9, 5, 6, 3, 1, 0, false},
		{"3x3s2valid", 9, 9, 3, 4, 3, 2, 1, false},
		{"1x1", 5, 5, 8, 16, 1, 1, 1, false},
		{"dw3x3s1same", 6, 6, 8, 8, 3, 1, 0, true},
		{"dw3x3s2same", 7, 7, 4, 4, 3, 2, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := randInt8(r, c.h*c.w*c.ic)
			kic := c.ic
			fshape := []int{c.oc, c.k, c.k, c.ic}
			if c.depthwise {
				kic = 1
				fshape = []int{1, c.k, c.k, c.oc}
			}
			filt := randInt8(r, c.oc*c.k*c.k*kic)
			fscale := make([]float32, c.oc)
			bias := make([]int32, c.oc)
			for i := range fscale {
				fscale[i] = 0.01 + 0.01*float32(i%3)
				bias[i] = int32(r.Intn(2000) - 1000)
			}
			const is, iz, os, oz = 0.03, -7, 0.2, 5
			axis := 0
			if c.depthwise {
				axis = 3
			}
			bscale := make([]float32, c.oc)
			for i := range bscale {
				bscale[i] = is * fscale[i]
			}
			op := tt.Op{Builtin: int32(tflite.OpConv2d), Inputs: []int{0, 1, 2}, Outputs: []int{3},
				Options: []any{c.pad, int32(c.s), int32(c.s), uint8(0)}}
			if c.depthwise {
				op = tt.Op{Builtin: int32(tflite.OpDepthwiseConv2d), Inputs: []int{0, 1, 2}, Outputs: []int{3},
					Options: []any{c.pad, int32(c.s), int32(c.s), int32(1), uint8(0)}}
			}
			oh, ow, pt, pl := outGeom(c.h, c.k, c.s, c.pad), outGeom(c.w, c.k, c.s, c.pad), padBefore(c.h, c.k, c.s, c.pad), padBefore(c.w, c.k, c.s, c.pad)
			m := tt.Model{
				Tensors: []tt.Tensor{
					{Name: "x", Type: models.Int8, Shape: []int{1, c.h, c.w, c.ic}, Scale: []float32{is}, ZeroPoint: []int64{iz}},
					{Name: "f", Type: models.Int8, Shape: fshape, Data: filt, Scale: fscale, Axis: axis},
					{Name: "b", Type: models.Int32, Shape: []int{c.oc}, Data: tt.Int32s(bias...), Scale: bscale},
					{Name: "y", Type: models.Int8, Shape: []int{1, oh, ow, c.oc}, Scale: []float32{os}, ZeroPoint: []int64{oz}},
				},
				Ops: []tt.Op{op}, Inputs: []int{0}, Outputs: []int{3},
			}
			got := run(t, m, in)[0]
			want := make([]int8, oh*ow*c.oc)
			for y := 0; y < oh; y++ {
				for x := 0; x < ow; x++ {
					for o := 0; o < c.oc; o++ {
						acc := float64(bias[o]) * float64(is) * float64(fscale[o])
						for ky := 0; ky < c.k; ky++ {
							for kx := 0; kx < c.k; kx++ {
								iy, ix := y*c.s-pt+ky, x*c.s-pl+kx
								if iy < 0 || iy >= c.h || ix < 0 || ix >= c.w {
									continue
								}
								if c.depthwise {
									acc += deq(in[(iy*c.w+ix)*c.ic+o], is, iz) * deq(filt[(ky*c.k+kx)*c.oc+o], fscale[o], 0)
									continue
								}
								for i := 0; i < c.ic; i++ {
									acc += deq(in[(iy*c.w+ix)*c.ic+i], is, iz) * deq(filt[((o*c.k+ky)*c.k+kx)*c.ic+i], fscale[o], 0)
								}
							}
						}
						want[(y*ow+x)*c.oc+o] = quant(acc, os, oz)
					}
				}
			}
			within1(t, c.name, got, want)
		})
	}
}

func outGeom(in, k, s int, pad uint8) int {
	if pad == 0 {
		return (in + s - 1) / s
	}
	return (in - k + s) / s
}

func padBefore(in, k, s int, pad uint8) int {
	if pad != 0 {
		return 0
	}
	out := outGeom(in, k, s, pad)
	return max((out-1)*s+k-in, 0) / 2
}

func TestShapeOps(t *testing.T) {
	x := tt.Int8s(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
	q := func(name string, shape ...int) tt.Tensor {
		return tt.Tensor{Name: name, Type: models.Int8, Shape: shape, Scale: []float32{1}}
	}
	cases := []struct {
		name string
		m    tt.Model
		want []int8
	}{
		{"transpose", tt.Model{
			Tensors: []tt.Tensor{q("x", 1, 3, 4), {Name: "p", Type: models.Int32, Shape: []int{3}, Data: tt.Int32s(0, 2, 1)}, q("y", 1, 4, 3)},
			Ops:     []tt.Op{{Builtin: int32(tflite.OpTranspose), Inputs: []int{0, 1}, Outputs: []int{2}}},
			Inputs:  []int{0}, Outputs: []int{2}},
			[]int8{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}},
		{"strided_slice", tt.Model{
			Tensors: []tt.Tensor{q("x", 1, 3, 4),
				{Name: "b", Type: models.Int32, Shape: []int{3}, Data: tt.Int32s(0, 1, 0)},
				{Name: "e", Type: models.Int32, Shape: []int{3}, Data: tt.Int32s(1, 3, 4)},
				{Name: "s", Type: models.Int32, Shape: []int{3}, Data: tt.Int32s(1, 1, 2)},
				q("y", 1, 2, 2)},
			Ops:    []tt.Op{{Builtin: int32(tflite.OpStridedSlice), Inputs: []int{0, 1, 2, 3}, Outputs: []int{4}, Options: []any{int32(0), int32(0), int32(0), int32(0), int32(0)}}},
			Inputs: []int{0}, Outputs: []int{4}},
			[]int8{4, 6, 8, 10}},
		{"concat", tt.Model{
			Tensors: []tt.Tensor{q("x", 1, 3, 4), {Name: "c", Type: models.Int8, Shape: []int{1, 3, 1}, Data: tt.Int8s(-1, -2, -3), Scale: []float32{1}}, q("y", 1, 3, 5)},
			Ops:     []tt.Op{{Builtin: int32(tflite.OpConcatenation), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{int32(-1), uint8(0)}}},
			Inputs:  []int{0}, Outputs: []int{2}},
			[]int8{0, 1, 2, 3, -1, 4, 5, 6, 7, -2, 8, 9, 10, 11, -3}},
		{"pad", tt.Model{
			Tensors: []tt.Tensor{q("x", 1, 3, 4), {Name: "p", Type: models.Int32, Shape: []int{3, 2}, Data: tt.Int32s(0, 0, 1, 0, 0, 1)}, {Name: "y", Type: models.Int8, Shape: []int{1, 4, 5}, Scale: []float32{1}, ZeroPoint: []int64{-9}}},
			Ops:     []tt.Op{{Builtin: int32(tflite.OpPad), Inputs: []int{0, 1}, Outputs: []int{2}}},
			Inputs:  []int{0}, Outputs: []int{2}},
			[]int8{-9, -9, -9, -9, -9, 0, 1, 2, 3, -9, 4, 5, 6, 7, -9, 8, 9, 10, 11, -9}},
		{"pad_rows", tt.Model{ // the last dimension unpadded: whole rows copied at once
			Tensors: []tt.Tensor{q("x", 1, 3, 4), {Name: "p", Type: models.Int32, Shape: []int{3, 2}, Data: tt.Int32s(0, 0, 1, 1, 0, 0)}, {Name: "y", Type: models.Int8, Shape: []int{1, 5, 4}, Scale: []float32{1}, ZeroPoint: []int64{-9}}},
			Ops:     []tt.Op{{Builtin: int32(tflite.OpPad), Inputs: []int{0, 1}, Outputs: []int{2}}},
			Inputs:  []int{0}, Outputs: []int{2}},
			[]int8{-9, -9, -9, -9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -9, -9, -9, -9}},
		{"maxpool", tt.Model{
			Tensors: []tt.Tensor{q("x", 1, 3, 4, 1), q("y", 1, 2, 2, 1)},
			Ops:     []tt.Op{{Builtin: int32(tflite.OpMaxPool2d), Inputs: []int{0}, Outputs: []int{1}, Options: []any{uint8(0), int32(2), int32(2), int32(2), int32(2), uint8(0)}}},
			Inputs:  []int{0}, Outputs: []int{1}},
			[]int8{5, 7, 9, 11}},
		{"resize_nearest", tt.Model{
			Tensors: []tt.Tensor{q("x", 1, 1, 2, 1), {Name: "s", Type: models.Int32, Shape: []int{2}, Data: tt.Int32s(2, 4)}, q("y", 1, 2, 4, 1)},
			Ops:     []tt.Op{{Builtin: int32(tflite.OpResizeNearestNeighbor), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{false, true}}},
			Inputs:  []int{0}, Outputs: []int{2}},
			[]int8{0, 0, 1, 1, 0, 0, 1, 1}},
		{"reshape", tt.Model{
			Tensors: []tt.Tensor{q("x", 1, 3, 4), {Name: "s", Type: models.Int32, Shape: []int{2}, Data: tt.Int32s(-1, 6)}, q("y", 2, 6)},
			Ops:     []tt.Op{{Builtin: int32(tflite.OpReshape), Inputs: []int{0, 1}, Outputs: []int{2}}},
			Inputs:  []int{0}, Outputs: []int{2}},
			[]int8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := x
			if c.name == "resize_nearest" {
				in = tt.Int8s(0, 1)
			}
			got := run(t, c.m, in)[0]
			if len(got) != len(c.want) {
				t.Fatalf("got %d elements, want %d", len(got), len(c.want))
			}
			for i := range c.want {
				if int8(got[i]) != c.want[i] {
					t.Fatalf("got %v, want %v", int8s(got), c.want)
				}
			}
		})
	}
}

func int8s(b []byte) []int8 {
	out := make([]int8, len(b))
	for i, x := range b {
		out[i] = int8(x)
	}
	return out
}

func TestFloatOps(t *testing.T) {
	// softmax, logistic and a top-k on float
	f := func(name string, shape ...int) tt.Tensor {
		return tt.Tensor{Name: name, Type: models.Float32, Shape: shape}
	}
	m := tt.Model{
		Tensors: []tt.Tensor{f("x", 1, 4), f("sm", 1, 4), f("sig", 1, 4),
			{Name: "k", Type: models.Int32, Shape: []int{}, Data: tt.Int32s(2)}, f("tv", 1, 2), {Name: "ti", Type: models.Int32, Shape: []int{1, 2}}},
		Ops: []tt.Op{
			{Builtin: int32(tflite.OpSoftmax), Inputs: []int{0}, Outputs: []int{1}, Options: []any{float32(1)}},
			{Builtin: int32(tflite.OpLogistic), Inputs: []int{0}, Outputs: []int{2}},
			{Builtin: int32(tflite.OpTopkV2), Inputs: []int{0, 3}, Outputs: []int{4, 5}},
		},
		Inputs: []int{0}, Outputs: []int{1, 2, 4, 5},
	}
	outs := run(t, m, tt.Float32s(1, 3, 2, 3))
	sm, sig := floats(outs[0]), floats(outs[1])
	var sum float64
	for _, v := range []float64{1, 3, 2, 3} {
		sum += math.Exp(v)
	}
	for i, v := range []float64{1, 3, 2, 3} {
		if d := math.Abs(float64(sm[i]) - math.Exp(v)/sum); d > 1e-6 {
			t.Errorf("softmax[%d] = %v", i, sm[i])
		}
		if d := math.Abs(float64(sig[i]) - 1/(1+math.Exp(-v))); d > 1e-6 {
			t.Errorf("logistic[%d] = %v", i, sig[i])
		}
	}
	tv, ti := floats(outs[2]), outs[3]
	if tv[0] != 3 || tv[1] != 3 || ti[0] != 1 || ti[4] != 3 {
		t.Errorf("topk = %v %v, want [3 3] at [1 3] (ties keep index order)", tv, ti)
	}
}

func floats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return out
}

func TestUnsupportedOperator(t *testing.T) {
	m := tt.Model{
		Tensors: []tt.Tensor{{Name: "x", Type: models.Float32, Shape: []int{1, 4}}, {Name: "y", Type: models.Float32, Shape: []int{1, 4}}},
		Ops:     []tt.Op{{Builtin: int32(tflite.OpLstm), Inputs: []int{0}, Outputs: []int{1}}},
		Inputs:  []int{0}, Outputs: []int{1},
	}
	_, err := tflite.Open(context.Background(), tt.Build(m), models.Options{})
	if err == nil || !errors.Is(err, models.ErrUnsupported) || !strings.Contains(err.Error(), "LSTM") {
		t.Fatalf("err = %v, want unsupported LSTM", err)
	}
	m.Ops[0] = tt.Op{Builtin: int32(tflite.OpCustom), Custom: "MyOp", Inputs: []int{0}, Outputs: []int{1}}
	_, err = tflite.Open(context.Background(), tt.Build(m), models.Options{})
	if err == nil || !strings.Contains(err.Error(), "CUSTOM(MyOp)") {
		t.Fatalf("err = %v, want unsupported CUSTOM(MyOp)", err)
	}
}

func TestBadFiles(t *testing.T) {
	good := tt.Build(tt.Model{
		Tensors: []tt.Tensor{{Name: "x", Type: models.Float32, Shape: []int{1, 4}}, {Name: "y", Type: models.Float32, Shape: []int{1, 4}}},
		Ops:     []tt.Op{{Builtin: int32(tflite.OpLogistic), Inputs: []int{0}, Outputs: []int{1}}},
		Inputs:  []int{0}, Outputs: []int{1},
	})
	if _, err := tflite.Open(context.Background(), good, models.Options{}); err != nil {
		t.Fatalf("good model: %v", err)
	}
	cases := map[string][]byte{
		"empty":     nil,
		"png":       []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
		"truncated": good[:len(good)/2],
		"bad root":  append([]byte{0xff, 0xff, 0xff, 0x7f}, good[4:]...),
		"one byte":  good[:9],
	}
	for name, b := range cases {
		if _, err := tflite.Open(context.Background(), b, models.Options{}); err == nil {
			t.Errorf("%s: no error", name)
		} else if !errors.Is(err, tflite.ErrFormat) {
			t.Errorf("%s: error %v does not wrap ErrFormat", name, err)
		}
	}
}

func TestTruncatedRealModel(t *testing.T) {
	b, err := os.ReadFile(modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	// (the last few KB are the Ultralytics ZIP appended after the flatbuffer)
	for _, n := range []int{8, 100, 4096, len(b) / 3, len(b) * 2 / 3} {
		if _, err := tflite.Open(context.Background(), b[:n], models.Options{}); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
}

// FuzzOpen: no input makes the reader or the interpreter builder panic.
func FuzzOpen(f *testing.F) {
	f.Add(tt.Build(tt.Model{
		Tensors: []tt.Tensor{{Name: "x", Type: models.Int8, Shape: []int{1, 2, 2, 1}, Scale: []float32{1}}, {Name: "y", Type: models.Int8, Shape: []int{1, 1, 1, 1}, Scale: []float32{1}}},
		Ops:     []tt.Op{{Builtin: int32(tflite.OpMaxPool2d), Inputs: []int{0}, Outputs: []int{1}, Options: []any{uint8(1), int32(2), int32(2), int32(2), int32(2), uint8(0)}}},
		Inputs:  []int{0}, Outputs: []int{1},
	}))
	f.Add([]byte("xxxxTFL3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := tflite.Open(context.Background(), b, models.Options{})
		if err == nil {
			_ = e.Invoke(context.Background())
			e.Close()
		}
	})
}

// TestMaxPoolFloat: float MAX_POOL_2D (the SPPF's 5x5, stride 1, same
// padding; and 3x3 stride 2 valid) against the plain window maximum.
func TestMaxPoolFloat(t *testing.T) {
	r := rand.New(rand.NewSource(21))
	for _, c := range []struct {
		h, w, ch, k, s int
		pad            uint8
	}{{7, 6, 3, 5, 1, 0}, {9, 8, 17, 3, 2, 1}} {
		oh, ow := outGeom(c.h, c.k, c.s, c.pad), outGeom(c.w, c.k, c.s, c.pad)
		pt, pl := padBefore(c.h, c.k, c.s, c.pad), padBefore(c.w, c.k, c.s, c.pad)
		m := tt.Model{
			Tensors: []tt.Tensor{{Name: "x", Type: models.Float32, Shape: []int{1, c.h, c.w, c.ch}}, {Name: "y", Type: models.Float32, Shape: []int{1, oh, ow, c.ch}}},
			Ops:     []tt.Op{{Builtin: int32(tflite.OpMaxPool2d), Inputs: []int{0}, Outputs: []int{1}, Options: []any{c.pad, int32(c.s), int32(c.s), int32(c.k), int32(c.k), uint8(0)}}},
			Inputs:  []int{0}, Outputs: []int{1},
		}
		x := make([]float32, c.h*c.w*c.ch)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		got := floats(run(t, m, tt.Float32s(x...))[0])
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				for ch := 0; ch < c.ch; ch++ {
					want := float32(math.Inf(-1))
					for ky := 0; ky < c.k; ky++ {
						for kx := 0; kx < c.k; kx++ {
							iy, ix := oy*c.s-pt+ky, ox*c.s-pl+kx
							if iy >= 0 && iy < c.h && ix >= 0 && ix < c.w {
								want = max(want, x[(iy*c.w+ix)*c.ch+ch])
							}
						}
					}
					if g := got[(oy*ow+ox)*c.ch+ch]; g != want {
						t.Fatalf("%v: y[%d,%d,%d] = %g, want %g", c, oy, ox, ch, g, want)
					}
				}
			}
		}
	}
}
