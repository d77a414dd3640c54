package tflite

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestFuseConvSiLU: a CONV_2D whose output only a SiLU (MUL(x, LOGISTIC(x)))
// reads writes the SiLU's output itself, and the bytes are those of the
// convolution and the SiLU run apart (the same model with x also a graph
// output, so the convolution cannot take the SiLU), on float, hybrid and
// int8 convolutions, with channel counts and pixel counts that leave vector
// tails, a hybrid batch whose items do not end on a vector and a grouped
// convolution (those two without the tile hook: a pass after the
// convolution). The profile shows the fusion.
func TestFuseConvSiLU(t *testing.T) {
	for _, c := range []struct {
		name                       string
		typ                        string // f32, hybrid, s8
		h, w, ic, oc, fd, k, batch int
	}{
		{"f32 3x3", "f32", 13, 11, 3, 7, 3, 3, 1},
		{"f32 1x1", "f32", 9, 9, 16, 32, 16, 1, 1},
		{"f32 grouped", "f32", 6, 5, 8, 6, 4, 3, 1},
		{"hybrid 3x3", "hybrid", 12, 10, 8, 33, 8, 3, 1},
		{"hybrid batch 2 unaligned", "hybrid", 5, 3, 4, 7, 4, 3, 2},
		{"hybrid batch 2 aligned", "hybrid", 8, 8, 4, 16, 4, 1, 2},
		{"s8 3x3", "s8", 11, 9, 5, 13, 5, 3, 1},
		{"s8 1x1", "s8", 8, 8, 16, 64, 16, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			outs := map[bool][]byte{}
			for _, fused := range []bool{true, false} {
				m, in := convSiLUModel(c.typ, c.h, c.w, c.ic, c.oc, c.fd, c.k, c.batch)
				if !fused {
					m.Outputs = append(m.Outputs, 3) // x read by a graph output too
				}
				e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				ip := e.(*Interpreter)
				if c.batch > 1 {
					if err := ip.SetBatch(c.batch); err != nil {
						t.Fatal(err)
					}
				}
				copy(ip.Input(0), in)
				p := &Profiler{}
				ip.SetProfiler(p)
				if err := ip.Invoke(context.Background()); err != nil {
					t.Fatal(err)
				}
				ops := p.Report().Ops
				if got := strings.HasSuffix(ops[0].Kind, "+silu") && ops[2].Kind == "fused into 0" && ops[1].Kind == "fused into 0"; got != fused {
					t.Fatalf("fused %v, want %v (kinds %q, %q, %q)", got, fused, ops[0].Kind, ops[1].Kind, ops[2].Kind)
				}
				outs[fused] = append([]byte(nil), ip.Output(0)...)
				e.Close()
			}
			if len(outs[true]) != len(outs[false]) {
				t.Fatalf("%d bytes fused, %d apart", len(outs[true]), len(outs[false]))
			}
			for i := range outs[true] {
				if outs[true][i] != outs[false][i] {
					t.Fatalf("byte %d of the output: fused %d, apart %d", i, outs[true][i], outs[false][i])
				}
			}
		})
	}
}

// convSiLUModel builds x = CONV_2D(in), y = MUL(x, LOGISTIC(x)) with output
// y (tensor 5; x is tensor 3), and an input for it of batch items.
func convSiLUModel(typ string, h, w, ic, oc, fd, k, batch int) (tt.Model, []byte) {
	r := rand.New(rand.NewPCG(uint64(h*w), uint64(oc)))
	oh, ow := h-k+1, w-k+1
	filt := make([]byte, oc*k*k*fd)
	for i := range filt {
		filt[i] = byte(r.IntN(255) - 127)
	}
	fscale := make([]float32, oc)
	for i := range fscale {
		fscale[i] = 0.002 + 0.02*r.Float32()
	}
	fb := make([]float32, oc)
	ib := make([]int32, oc)
	for i := range fb {
		fb[i], ib[i] = r.Float32()-0.5, int32(r.IntN(4000)-2000)
	}
	act := func(name string, shape []int) tt.Tensor {
		return tt.Tensor{Name: name, Type: models.Float32, Shape: shape}
	}
	f := tt.Tensor{Name: "f", Type: models.Int8, Shape: []int{oc, k, k, fd}, Data: filt, Scale: fscale}
	b := tt.Tensor{Name: "b", Type: models.Float32, Shape: []int{oc}, Data: tt.Float32s(fb...)}
	in := make([]byte, batch*h*w*ic)
	for i := range in {
		in[i] = byte(r.IntN(256))
	}
	switch typ {
	case "f32":
		wf := make([]float32, len(filt))
		for i, v := range filt {
			wf[i] = float32(int8(v)) * fscale[i/(k*k*fd)]
		}
		f = tt.Tensor{Name: "f", Type: models.Float32, Shape: f.Shape, Data: tt.Float32s(wf...)}
		fallthrough
	case "hybrid":
		x := make([]float32, len(in))
		for i := range x {
			x[i] = float32(r.NormFloat64()) * 2
		}
		in = tt.Float32s(x...)
	case "s8":
		act = func(name string, shape []int) tt.Tensor {
			s, zp := float32(0.05), int64(-20)
			switch name {
			case "s":
				s, zp = 1.0/256, -128
			case "y":
				s, zp = 0.03, -110
			}
			return tt.Tensor{Name: name, Type: models.Int8, Shape: shape, Scale: []float32{s}, ZeroPoint: []int64{zp}}
		}
		f.Axis = 0
		bs := make([]float32, oc)
		for i := range bs {
			bs[i] = 0.05 * fscale[i]
		}
		b = tt.Tensor{Name: "b", Type: models.Int32, Shape: []int{oc}, Data: tt.Int32s(ib...), Scale: bs, ZeroPoint: make([]int64, oc)}
	}
	out := []int{1, oh, ow, oc}
	m := tt.Model{
		Tensors: []tt.Tensor{act("in", []int{1, h, w, ic}), f, b, act("x", out), act("s", out), act("y", out)},
		Ops: []tt.Op{
			{Builtin: int32(OpConv2d), Inputs: []int{0, 1, 2}, Outputs: []int{3}, Options: []any{uint8(padValid), int32(1), int32(1), uint8(0)}},
			{Builtin: int32(OpLogistic), Inputs: []int{3}, Outputs: []int{4}},
			{Builtin: int32(OpMul), Inputs: []int{4, 3}, Outputs: []int{5}, Options: []any{uint8(0)}},
		},
		Inputs: []int{0}, Outputs: []int{5},
	}
	return m, in
}

// TestFuseConvSiLUModels: on the YOLO models, the convolutions that take
// their SiLU give the model's output bytes of the unfused graph.
func TestFuseConvSiLUModels(t *testing.T) {
	for _, name := range []string{"yolo26n_int8_320_e2e", "yolov8n_int8", "yolov8n_full_integer_quant"} {
		t.Run(name, func(t *testing.T) {
			if testing.Short() && name != "yolo26n_int8_320_e2e" {
				t.Skip("short")
			}
			mb, err := os.ReadFile(modeltest.Path(t, "models", name+".tflite"))
			if err != nil {
				t.Fatal(err)
			}
			var outs [2][]byte
			var fusedConvs int
			for i, on := range []bool{true, false} {
				fuseConvs = on
				e, err := Open(context.Background(), mb, models.Options{Threads: 2})
				fuseConvs = true
				if err != nil {
					t.Fatal(err)
				}
				ip := e.(*Interpreter)
				for _, n := range ip.nodes {
					if _, ok := n.k.(*convSiLU); ok {
						fusedConvs++
					}
				}
				r := rand.New(rand.NewPCG(1, 1))
				in := ip.Input(0)
				if ip.Inputs()[0].Type == models.Float32 {
					x := f32s(in)
					for j := range x {
						x[j] = r.Float32()
					}
				} else {
					for j := range in {
						in[j] = byte(r.IntN(256))
					}
				}
				if err := ip.Invoke(context.Background()); err != nil {
					t.Fatal(err)
				}
				outs[i] = append([]byte(nil), ip.Output(0)...)
				e.Close()
			}
			if fusedConvs == 0 {
				t.Fatal("no convolution took its SiLU")
			}
			t.Logf("%d convolutions take their SiLU", fusedConvs)
			for j := range outs[0] {
				if outs[0][j] != outs[1][j] {
					t.Fatalf("output byte %d: fused %d, apart %d", j, outs[0][j], outs[1][j])
				}
			}
		})
	}
}
