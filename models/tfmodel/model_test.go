package tfmodel_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	tt "edgefleet/models/tflite/tflitetest"
	"edgefleet/models/tfmodel"
)

func tiny() []byte {
	return tt.Build(tt.Model{
		Tensors: []tt.Tensor{
			{Name: "x", Type: models.Int8, Shape: []int{1, 2, 2, 1}, Scale: []float32{0.5}, ZeroPoint: []int64{-3}},
			{Name: "y", Type: models.Int8, Shape: []int{1, 1, 1, 1}, Scale: []float32{0.5}, ZeroPoint: []int64{-3}},
		},
		Ops: []tt.Op{{Builtin: int32(tfmodel.OpMaxPool2d), Inputs: []int{0}, Outputs: []int{1},
			Options: []any{uint8(1), int32(2), int32(2), int32(2), int32(2), uint8(0)}}},
		Inputs: []int{0}, Outputs: []int{1},
	})
}

func TestParse(t *testing.T) {
	m, err := tfmodel.Parse(tiny())
	if err != nil {
		t.Fatal(err)
	}
	sg := m.Subgraphs[0]
	if len(sg.Tensors) != 2 || sg.Inputs[0] != 0 || sg.Outputs[0] != 1 {
		t.Fatalf("subgraph = %+v", sg)
	}
	in := sg.Tensors[0].Info()
	if in.Name != "x" || in.Type != models.Int8 || len(in.Shape) != 4 || in.Quant == nil || in.Quant.ZeroPoint[0] != -3 {
		t.Errorf("input = %+v", in)
	}
	op := sg.Operators[0]
	if got := m.OperatorCodes[op.OpcodeIndex].Name(); got != "MAX_POOL_2D" {
		t.Errorf("operator = %s", got)
	}
	if got := op.OptInt(1, 0); got != 2 {
		t.Errorf("stride option = %d, want 2", got)
	}
}

// TestParseRejects checks that every prefix of a valid model and some
// non-models give an error wrapping ErrFormat, not a panic.
func TestParseRejects(t *testing.T) {
	data := tiny()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not a model", []byte("hello, this is not a model")},
		{"bad root offset", append([]byte{0xff, 0xff, 0xff, 0x7f}, data[4:]...)},
	} {
		if _, err := tfmodel.Parse(tc.data); !errors.Is(err, tfmodel.ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", tc.name, err)
		}
	}
	for n := 8; n < len(data); n++ {
		if _, err := tfmodel.Parse(data[:n]); err != nil && !errors.Is(err, tfmodel.ErrFormat) {
			t.Fatalf("prefix %d: err = %v, want ErrFormat", n, err)
		}
	}
}

func TestParseRealModels(t *testing.T) {
	for _, p := range modeltest.Glob(t, "models/*.tflite") {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := tfmodel.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Subgraphs[0].Inputs) == 0 || len(m.Subgraphs[0].Outputs) == 0 || len(m.Subgraphs[0].Operators) == 0 {
				t.Errorf("main subgraph has no inputs, outputs or operators")
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(tiny())
	f.Add([]byte("xxxxTFL3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := tfmodel.Parse(b)
		if err != nil {
			if !errors.Is(err, tfmodel.ErrFormat) {
				t.Fatalf("err = %v, want ErrFormat", err)
			}
			return
		}
		// Options are read lazily; they may panic only with a FormatError.
		for _, sg := range m.Subgraphs {
			for _, op := range sg.Operators {
				func() {
					defer func() {
						if r := recover(); r != nil {
							if _, ok := r.(*tfmodel.FormatError); !ok {
								panic(r)
							}
						}
					}()
					_ = op.OptInts(0)
					_ = op.OptInt(1, 0)
				}()
			}
		}
	})
}
