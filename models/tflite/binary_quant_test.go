package tflite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// TestBinaryQuantExact runs int8 ADD, SUB and MUL through the interpreter on
// same-shape operands (large enough to be split over workers), a broadcast
// along the last axis, a single value on either side and a general
// broadcast, and holds every output byte to quantOne, TFLite's integer
// arithmetic for one pair.
func TestBinaryQuantExact(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	shapes := []struct{ a, b []int }{
		{[]int{1, 40, 40, 32}, []int{1, 40, 40, 32}},
		{[]int{1, 3, 5, 7}, []int{1, 3, 5, 7}},
		{[]int{1, 3, 5, 37}, []int{37}},
		{[]int{2, 300, 7}, []int{1}},
		{[]int{1}, []int{4, 99}},
		{[]int{2, 3, 1}, []int{1, 1, 5}},
	}
	for _, op := range []BuiltinOp{OpAdd, OpSub, OpMul} {
		for _, s := range shapes {
			t.Run(fmt.Sprint(op, s.a, s.b), func(t *testing.T) {
				bc, _ := newBcast(s.a, s.b)
				m := tt.Model{
					Tensors: []tt.Tensor{
						{Name: "a", Type: models.Int8, Shape: s.a, Scale: []float32{0.05}, ZeroPoint: []int64{3}},
						{Name: "b", Type: models.Int8, Shape: s.b, Scale: []float32{0.02}, ZeroPoint: []int64{-5}},
						{Name: "y", Type: models.Int8, Shape: bc.out, Scale: []float32{0.1}, ZeroPoint: []int64{-2}},
					},
					Ops:    []tt.Op{{Builtin: int32(op), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{uint8(0)}}},
					Inputs: []int{0, 1}, Outputs: []int{2},
				}
				e, err := Open(context.Background(), tt.Build(m), models.Options{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				ip := e.(*Interpreter)
				a, b := ip.Input(0), ip.Input(1)
				for _, x := range [][]byte{a, b} {
					for i := range x {
						x[i] = byte(r.Uint32())
					}
				}
				a[0], b[0] = 0x80, 0x7f // the extremes
				if err := ip.Invoke(context.Background()); err != nil {
					t.Fatal(err)
				}
				k := ip.nodes[0].k.(*binaryOp)
				got := ip.Output(0)
				bad := 0
				bc.each(func(o, ia, ib, sa, sb, n int) {
					for j := range n {
						x, y := int32(int8(a[ia+j*sa])), int32(int8(b[ib+j*sb]))
						if want := byte(k.quantOne(x, y)); got[o+j] != want && bad < 5 {
							t.Errorf("y[%d] = %d for (%d, %d), want %d", o+j, int8(got[o+j]), x, y, int8(want))
							bad++
						}
					}
				})
			})
		}
	}
}

// TestArithF32Scalar holds the single-value loops, with the value on either
// side, to the operator's plain arithmetic and clamp.
func TestArithF32Scalar(t *testing.T) {
	x := []float32{-3, -0.5, 0, 0.25, 2, 7}
	const v, lo, hi = 1.5, -2, 6
	for _, op := range []BuiltinOp{OpAdd, OpSub, OpMul} {
		for _, vFirst := range []bool{false, true} {
			o := make([]float32, len(x))
			if !arithF32Scalar(op, o, x, v, vFirst, lo, hi) {
				t.Fatalf("%s: not handled", op)
			}
			for i, u := range x {
				a, b := u, float32(v)
				if vFirst {
					a, b = b, a
				}
				want := map[BuiltinOp]float32{OpAdd: a + b, OpSub: a - b, OpMul: a * b}[op]
				if want = min(max(want, lo), hi); o[i] != want {
					t.Errorf("%s vFirst=%v: %g → %g, want %g", op, vFirst, u, o[i], want)
				}
			}
		}
	}
	if arithF32Scalar(OpDiv, make([]float32, 1), x[:1], v, false, lo, hi) {
		t.Error("DIV taken by the single-value loops")
	}
}
