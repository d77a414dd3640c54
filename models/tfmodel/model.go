package tfmodel

import (
	"errors"
	"fmt"
	"runtime"

	"edgefleet/models"
)

// ErrFormat is returned (wrapped) for files that are not valid TFLite models.
var ErrFormat = errors.New("tfmodel: invalid model")

// Model is a parsed .tflite file. Byte slices (buffers, metadata) point into
// the file's bytes, which must not change while the Model is in use.
type Model struct {
	Version       uint32
	Description   string
	OperatorCodes []OperatorCode
	Subgraphs     []Subgraph
	// Buffers holds the constant data of each buffer index (nil when empty).
	Buffers  [][]byte
	Metadata []Metadata
	// Size is the length of the file in bytes.
	Size int
}

// OperatorCode names an operator kind used by the model.
type OperatorCode struct {
	Builtin BuiltinOp
	Custom  string
	Version int
}

// Name is the operator's name, e.g. CONV_2D, or the custom code.
func (c OperatorCode) Name() string {
	if c.Builtin == OpCustom {
		return "CUSTOM(" + c.Custom + ")"
	}
	return c.Builtin.String()
}

// Metadata is a named buffer of model metadata.
type Metadata struct {
	Name   string
	Buffer int
}

// Subgraph is one computation graph of the model; the first is the main one.
type Subgraph struct {
	Name      string
	Tensors   []Tensor
	Inputs    []int
	Outputs   []int
	Operators []Operator
}

// Tensor is a tensor declaration.
type Tensor struct {
	Name           string
	Type           models.DType
	Shape          []int
	ShapeSignature []int
	Buffer         int
	Quant          *models.Quant
	IsVariable     bool
	Sparse         bool
}

// Info converts t to the engine-independent description.
func (t *Tensor) Info() models.TensorInfo {
	return models.TensorInfo{Name: t.Name, Type: t.Type, Shape: append([]int(nil), t.Shape...), Quant: t.Quant}
}

// Operator is one node of a subgraph.
type Operator struct {
	OpcodeIndex int
	Inputs      []int
	Outputs     []int
	options     table
	hasOptions  bool
}

// Parse reads a TFLite flatbuffer. It checks every offset and length against
// the file, so truncated, corrupt or hostile files give an error, never a
// panic or an allocation larger than the file.
func Parse(data []byte) (m *Model, err error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: file is %d bytes, too short for a flatbuffer", ErrFormat, len(data))
	}
	if string(data[4:8]) != "TFL3" {
		return nil, fmt.Errorf("%w: file identifier is %q, want \"TFL3\" (not a .tflite model)", ErrFormat, data[4:8])
	}
	defer func() {
		if r := recover(); r != nil {
			m = nil
			switch e := r.(type) {
			case *FormatError:
				err = fmt.Errorf("%w: %s", ErrFormat, e.Msg)
			case runtime.Error:
				err = fmt.Errorf("%w: %v", ErrFormat, e)
			default:
				panic(r)
			}
		}
	}()
	b := fbuf(data)
	root := b.table(b.deref(0, "root"), "model")
	m = &Model{Size: len(data)}
	m.Version = root.uint32(0, 0)
	m.Description = root.string(3, "model description")
	root.tables(1, "operator_codes", func(k int, t table) {
		oc := OperatorCode{Version: int(t.int32(2, 1)), Custom: t.string(1, "custom_code")}
		dep := BuiltinOp(int8(t.uint8(0, 0)))
		code := BuiltinOp(t.int32(3, 0))
		// Files from before builtin_code existed only set the deprecated byte;
		// newer files put 127 there for codes that do not fit.
		oc.Builtin = max(dep, code)
		m.OperatorCodes = append(m.OperatorCodes, oc)
	})
	nbuf := root.tables(4, "buffers", func(k int, t table) {
		var data []byte
		if t.has(1) {
			off, size := t.uint64(1, 0), t.uint64(2, 0)
			if off > 1 {
				if off > uint64(len(b)) || size > uint64(len(b))-off {
					failf("buffers[%d]: offset %d size %d outside the %d-byte file", k, off, size, len(b))
				}
				data = b[off : off+size : off+size]
			}
		}
		if data == nil {
			data = t.bytes(0, fmt.Sprintf("buffers[%d].data", k))
		}
		m.Buffers = append(m.Buffers, data)
	})
	root.tables(6, "metadata", func(k int, t table) {
		md := Metadata{Name: t.string(0, "metadata name"), Buffer: int(t.uint32(1, 0))}
		if md.Buffer >= nbuf {
			failf("metadata[%d] %q: buffer %d of %d", k, md.Name, md.Buffer, nbuf)
		}
		m.Metadata = append(m.Metadata, md)
	})
	root.tables(2, "subgraphs", func(k int, t table) {
		m.Subgraphs = append(m.Subgraphs, parseSubgraph(t, k, nbuf, len(m.OperatorCodes)))
	})
	if len(m.Subgraphs) == 0 {
		return nil, fmt.Errorf("%w: no subgraphs", ErrFormat)
	}
	return m, nil
}

func parseSubgraph(t table, k, nbuf, nops int) Subgraph {
	sg := Subgraph{Name: t.string(4, "subgraph name")}
	where := fmt.Sprintf("subgraphs[%d]", k)
	t.tables(0, where+".tensors", func(i int, tt table) {
		ten := Tensor{
			Name:           tt.string(3, "tensor name"),
			Type:           models.DType(tt.uint8(1, 0)),
			Shape:          tt.ints(0, "tensor shape"),
			ShapeSignature: tt.ints(7, "tensor shape_signature"),
			Buffer:         int(tt.uint32(2, 0)),
			IsVariable:     tt.bool(5),
			Sparse:         tt.has(6),
		}
		if ten.Buffer >= nbuf {
			failf("%s.tensors[%d] %q: buffer %d of %d", where, i, ten.Name, ten.Buffer, nbuf)
		}
		for _, d := range ten.Shape {
			if d < -1 || d > 1<<28 {
				failf("%s.tensors[%d] %q: bad dimension %d", where, i, ten.Name, d)
			}
		}
		if q, ok := tt.subtable(4, "quantization"); ok {
			scale := q.float32s(2, "quantization scale")
			zp := q.int64s(3, "quantization zero_point")
			if len(scale) > 0 {
				if len(zp) != 0 && len(zp) != len(scale) {
					failf("%s.tensors[%d] %q: %d scales but %d zero points", where, i, ten.Name, len(scale), len(zp))
				}
				if len(zp) == 0 {
					zp = make([]int64, len(scale))
				}
				ten.Quant = &models.Quant{Scale: scale, ZeroPoint: zp, Axis: int(q.int32(6, 0))}
			}
		}
		sg.Tensors = append(sg.Tensors, ten)
	})
	nt := len(sg.Tensors)
	checkIdx := func(idx []int, what string) {
		for _, x := range idx {
			if x < -1 || x >= nt {
				failf("%s: tensor index %d of %d", what, x, nt)
			}
		}
	}
	sg.Inputs = t.ints(1, where+".inputs")
	sg.Outputs = t.ints(2, where+".outputs")
	checkIdx(sg.Inputs, where+".inputs")
	checkIdx(sg.Outputs, where+".outputs")
	t.tables(3, where+".operators", func(i int, ot table) {
		op := Operator{
			OpcodeIndex: int(ot.uint32(0, 0)),
			Inputs:      ot.ints(1, "operator inputs"),
			Outputs:     ot.ints(2, "operator outputs"),
		}
		ow := fmt.Sprintf("%s.operators[%d]", where, i)
		if op.OpcodeIndex >= nops {
			failf("%s: opcode index %d of %d", ow, op.OpcodeIndex, nops)
		}
		checkIdx(op.Inputs, ow+".inputs")
		checkIdx(op.Outputs, ow+".outputs")
		if o, ok := ot.subtable(4, ow+".builtin_options"); ok {
			op.options, op.hasOptions = o, true
		}
		sg.Operators = append(sg.Operators, op)
	})
	return sg
}

// MetadataBuffer returns the bytes of the named metadata entry, or nil.
func (m *Model) MetadataBuffer(name string) []byte {
	for _, md := range m.Metadata {
		if md.Name == name {
			return m.Buffers[md.Buffer]
		}
	}
	return nil
}

// Options accessors, for the interpreter's kernels. Options are read lazily,
// so reading those of a hostile file can still hit a bad offset: then they
// panic with a *FormatError, which the caller recovers (the interpreter does
// while it builds its plan).

func (op *Operator) OptInt(i int, def int32) int32 {
	if !op.hasOptions {
		return def
	}
	return op.options.int32(i, def)
}

func (op *Operator) OptBool(i int) bool {
	if !op.hasOptions {
		return false
	}
	return op.options.bool(i)
}

func (op *Operator) OptByte(i int, def uint8) uint8 {
	if !op.hasOptions {
		return def
	}
	return op.options.uint8(i, def)
}

func (op *Operator) OptFloat(i int, def float32) float32 {
	if !op.hasOptions {
		return def
	}
	return op.options.float32(i, def)
}

func (op *Operator) OptInts(i int) []int {
	if !op.hasOptions {
		return nil
	}
	return op.options.ints(i, "options vector")
}
