// Package tflitetest builds small .tflite flatbuffers in tests: one-operator
// models to check a kernel at a time, and broken files to check errors.
package tflitetest

import (
	"encoding/binary"
	"math"

	"edgefleet/models"
)

// Tensor declares a tensor. Data, when set, makes it a constant.
type Tensor struct {
	Name      string
	Type      models.DType
	Shape     []int
	Data      []byte
	Scale     []float32
	ZeroPoint []int64
	Axis      int
}

// Op is one operator. Options lists the builtin options table's fields by
// index: nil (absent), uint8, bool, int32, float32 or []int32.
type Op struct {
	Builtin int32
	Custom  string
	Version int32
	Inputs  []int
	Outputs []int
	Options []any
}

// Model is a one-subgraph model.
type Model struct {
	Tensors  []Tensor
	Ops      []Op
	Inputs   []int
	Outputs  []int
	Metadata map[string][]byte
}

// Build serializes m as a TFLite flatbuffer.
func Build(m Model) []byte {
	// Buffers: 0 is the empty sentinel, then one per constant tensor.
	bufs := []*table{{}}
	tensorBuf := make([]int32, len(m.Tensors))
	for i, t := range m.Tensors {
		if t.Data != nil {
			tensorBuf[i] = int32(len(bufs))
			bufs = append(bufs, &table{fields: []any{bytesVec(t.Data)}})
		}
	}
	var metas []*table
	for name, data := range m.Metadata {
		metas = append(metas, &table{fields: []any{str(name), uint32(len(bufs))}})
		bufs = append(bufs, &table{fields: []any{bytesVec(data)}})
	}
	// Operator codes: one per distinct (builtin, custom, version).
	type key struct {
		b int32
		c string
		v int32
	}
	codeIdx := map[key]int{}
	var codes []*table
	var ops []*table
	for _, op := range m.Ops {
		v := op.Version
		if v == 0 {
			v = 1
		}
		k := key{op.Builtin, op.Custom, v}
		idx, ok := codeIdx[k]
		if !ok {
			idx = len(codes)
			codeIdx[k] = idx
			dep := uint8(min(op.Builtin, 127))
			f := []any{dep, nil, v, op.Builtin}
			if op.Custom != "" {
				f[1] = str(op.Custom)
			}
			codes = append(codes, &table{fields: f})
		}
		f := []any{uint32(idx), ints(op.Inputs), ints(op.Outputs), nil, nil}
		if op.Options != nil {
			f[3] = uint8(1)
			f[4] = &table{fields: op.Options}
		}
		ops = append(ops, &table{fields: f})
	}
	var tensors []*table
	for i, t := range m.Tensors {
		var q any
		if len(t.Scale) > 0 {
			zp := t.ZeroPoint
			if zp == nil {
				zp = make([]int64, len(t.Scale))
			}
			q = &table{fields: []any{nil, nil, floats(t.Scale), int64s(zp), nil, nil, int32(t.Axis)}}
		}
		tensors = append(tensors, &table{fields: []any{ints(t.Shape), uint8(t.Type), uint32(tensorBuf[i]), str(t.Name), q}})
	}
	sg := &table{fields: []any{tables(tensors), ints(m.Inputs), ints(m.Outputs), tables(ops), str("main")}}
	root := &table{fields: []any{uint32(3), tables(codes), tables([]*table{sg}), str("tflitetest"), tables(bufs), nil, tables(metas)}}
	var b builder
	b.buf = make([]byte, 8)
	copy(b.buf[4:], "TFL3")
	pos := b.table(root)
	binary.LittleEndian.PutUint32(b.buf[0:], uint32(pos))
	return b.buf
}

type table struct{ fields []any }
type strVal string
type vec struct {
	elem int
	data []byte
}
type tableVec []*table

func str(s string) strVal        { return strVal(s) }
func bytesVec(b []byte) vec      { return vec{1, b} }
func tables(t []*table) tableVec { return tableVec(t) }
func ints(v []int) vec {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(int32(x)))
	}
	return vec{4, b}
}
func floats(v []float32) vec {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return vec{4, b}
}
func int64s(v []int64) vec {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return vec{8, b}
}

// builder writes front to back: a table, then its children after it, so
// every uoffset points forward as the format requires.
type builder struct{ buf []byte }

func (b *builder) align(n int) {
	for len(b.buf)%n != 0 {
		b.buf = append(b.buf, 0)
	}
}

func (b *builder) table(t *table) int {
	b.align(4)
	// vtable
	vt := len(b.buf)
	nf := len(t.fields)
	vtLen := 4 + 2*nf
	b.buf = append(b.buf, make([]byte, vtLen)...)
	b.align(4)
	tpos := len(b.buf)
	b.buf = append(b.buf, 0, 0, 0, 0) // soffset to vtable
	binary.LittleEndian.PutUint32(b.buf[tpos:], uint32(int32(tpos-vt)))
	type patch struct {
		at  int
		val any
	}
	var patches []patch
	for i, f := range t.fields {
		if f == nil {
			continue
		}
		// each field 4- or 8-byte slot for simplicity
		var raw []byte
		switch v := f.(type) {
		case uint8:
			raw = []byte{v, 0, 0, 0}
		case bool:
			if v {
				raw = []byte{1, 0, 0, 0}
			} else {
				raw = []byte{0, 0, 0, 0}
			}
		case int32:
			raw = binary.LittleEndian.AppendUint32(nil, uint32(v))
		case uint32:
			raw = binary.LittleEndian.AppendUint32(nil, v)
		case float32:
			raw = binary.LittleEndian.AppendUint32(nil, math.Float32bits(v))
		case []int32:
			is := make([]int, len(v))
			for j, x := range v {
				is[j] = int(x)
			}
			raw = []byte{0, 0, 0, 0}
			patches = append(patches, patch{len(b.buf), ints(is)})
		default:
			raw = []byte{0, 0, 0, 0}
			patches = append(patches, patch{len(b.buf), f})
		}
		binary.LittleEndian.PutUint16(b.buf[vt+4+2*i:], uint16(len(b.buf)-tpos))
		b.buf = append(b.buf, raw...)
	}
	binary.LittleEndian.PutUint16(b.buf[vt:], uint16(vtLen))
	binary.LittleEndian.PutUint16(b.buf[vt+2:], uint16(len(b.buf)-tpos))
	for _, p := range patches {
		child := b.child(p.val)
		binary.LittleEndian.PutUint32(b.buf[p.at:], uint32(child-p.at))
	}
	return tpos
}

func (b *builder) child(v any) int {
	switch v := v.(type) {
	case *table:
		return b.table(v)
	case strVal:
		b.align(4)
		p := len(b.buf)
		b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(v)))
		b.buf = append(b.buf, v...)
		b.buf = append(b.buf, 0)
		return p
	case vec:
		// align the element data to 16 like flatc does for buffers
		for (len(b.buf)+4)%16 != 0 {
			b.buf = append(b.buf, 0)
		}
		p := len(b.buf)
		b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(v.data)/v.elem))
		b.buf = append(b.buf, v.data...)
		return p
	case tableVec:
		b.align(4)
		p := len(b.buf)
		b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(v)))
		slots := len(b.buf)
		b.buf = append(b.buf, make([]byte, 4*len(v))...)
		for i, t := range v {
			c := b.table(t)
			at := slots + 4*i
			binary.LittleEndian.PutUint32(b.buf[at:], uint32(c-at))
		}
		return p
	}
	panic("tflitetest: unknown field type")
}

// Int8s encodes int8 values as tensor data.
func Int8s(v ...int8) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return b
}

// Int32s encodes int32 values as tensor data.
func Int32s(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// Float32s encodes float32 values as tensor data.
func Float32s(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
