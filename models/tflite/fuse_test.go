package tflite_test

import (
	"context"
	"math"
	"math/rand"
	"testing"

	"edgefleet/models"
	"edgefleet/models/tflite"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestFuseSiLU: MUL(x, LOGISTIC(x)) gives x times the LOGISTIC's own output,
// bit for bit, whether the pair is fused (the logistic read only by the
// MUL) or not (its output also a graph output), with the operands either way
// round and sizes that leave vector tails; the profile marks the fused one.
func TestFuseSiLU(t *testing.T) {
	f := func(name string, n int) tt.Tensor {
		return tt.Tensor{Name: name, Type: models.Float32, Shape: []int{1, n}}
	}
	for _, c := range []struct {
		name      string
		n         int
		swap      bool // MUL(σ(x), x)
		sigOutput bool // σ(x) is a graph output: no fusion
	}{
		{"fused", 1000, false, false},
		{"fused, operands swapped", 37, true, false},
		{"fused, shorter than a vector", 5, false, false},
		{"not fused: logistic is an output", 1000, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			mulIn := []int{0, 1}
			if c.swap {
				mulIn = []int{1, 0}
			}
			m := tt.Model{
				Tensors: []tt.Tensor{f("x", c.n), f("sig", c.n), f("y", c.n)},
				Ops: []tt.Op{
					{Builtin: int32(tflite.OpLogistic), Inputs: []int{0}, Outputs: []int{1}},
					{Builtin: int32(tflite.OpMul), Inputs: mulIn, Outputs: []int{2}, Options: []any{uint8(0)}},
				},
				Inputs: []int{0}, Outputs: []int{2},
			}
			if c.sigOutput {
				m.Outputs = []int{2, 1}
			}
			r := rand.New(rand.NewSource(int64(c.n)))
			x := make([]float32, c.n)
			for i := range x {
				x[i] = float32(r.NormFloat64() * 6)
			}
			e, err := tflite.Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ip := e.(*tflite.Interpreter)
			copy(ip.Input(0), tt.Float32s(x...))
			p := &tflite.Profiler{}
			ip.SetProfiler(p)
			if err := ip.Invoke(context.Background()); err != nil {
				t.Fatal(err)
			}
			y := floats(ip.Output(0))
			for i, v := range x {
				sig := float32(1 / (1 + math.Exp(-float64(v))))
				if d := math.Abs(float64(y[i] - v*sig)); d > 1e-6*math.Max(1, math.Abs(float64(v))) {
					t.Errorf("y[%d] = %g, want %g·σ = %g", i, y[i], v, v*sig)
				}
			}
			if c.sigOutput {
				sig := floats(ip.Output(1))
				for i, v := range x {
					if y[i] != v*sig[i] {
						t.Fatalf("y[%d] = %g, not x·σ(x) = %g", i, y[i], v*sig[i])
					}
				}
			}
			kind := p.Report().Ops[0].Kind
			if fused := kind == "fused into 1"; fused == c.sigOutput {
				t.Errorf("logistic's profile kind %q (fusion expected: %v)", kind, !c.sigOutput)
			}
		})
	}
}

// TestFuseSiLUInt8: the int8 MUL(x, LOGISTIC(x)) as one table gives the
// bytes of the two operators run apart (the pair not fused because the
// logistic is also an output), for every input byte and both operand
// orders, and the profile shows the fusion.
func TestFuseSiLUInt8(t *testing.T) {
	q := func(name string, s float32, zp int64) tt.Tensor {
		return tt.Tensor{Name: name, Type: models.Int8, Shape: []int{1, 256}, Scale: []float32{s}, ZeroPoint: []int64{zp}}
	}
	for _, swap := range []bool{false, true} {
		mulIn := []int{0, 1}
		if swap {
			mulIn = []int{1, 0}
		}
		outs := map[bool][]byte{}
		for _, fused := range []bool{true, false} {
			m := tt.Model{
				Tensors: []tt.Tensor{q("x", 0.06, 5), q("sig", 1.0/256, -128), q("y", 0.035, -100)},
				Ops: []tt.Op{
					{Builtin: int32(tflite.OpLogistic), Inputs: []int{0}, Outputs: []int{1}},
					{Builtin: int32(tflite.OpMul), Inputs: mulIn, Outputs: []int{2}, Options: []any{uint8(0)}},
				},
				Inputs: []int{0}, Outputs: []int{2},
			}
			if !fused {
				m.Outputs = []int{2, 1}
			}
			e, err := tflite.Open(context.Background(), tt.Build(m), models.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			ip := e.(*tflite.Interpreter)
			for i := range ip.Input(0) {
				ip.Input(0)[i] = byte(i)
			}
			p := &tflite.Profiler{}
			ip.SetProfiler(p)
			if err := ip.Invoke(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := p.Report().Ops[0].Kind == "fused into 1"; got != fused {
				t.Fatalf("swap %v: fused %v, want %v", swap, got, fused)
			}
			outs[fused] = append([]byte(nil), ip.Output(0)...)
			e.Close()
		}
		for i := range outs[true] {
			if outs[true][i] != outs[false][i] {
				t.Errorf("swap %v: input byte %d: fused %d, apart %d", swap, i, int8(outs[true][i]), int8(outs[false][i]))
			}
		}
	}
}
