package tfmodel

import (
	"encoding/binary"
	"fmt"
	"math"
)

// A minimal, bounds-checked flatbuffer reader: just what the TFLite schema
// needs. Every read checks its range; a bad offset aborts the parse with a
// FormatError (raised with panic and recovered in Parse, the way
// encoding/json handles deep errors), so no slice is ever indexed out of
// range and no allocation is larger than the file.

// FormatError is what the reader panics with on a bad offset or length.
// Parse recovers it into an error wrapping ErrFormat; code that reads
// operator options later (Operator.Opt*) must recover it the same way.
type FormatError struct{ Msg string }

func (e *FormatError) Error() string { return e.Msg }

func failf(format string, args ...any) {
	panic(&FormatError{fmt.Sprintf(format, args...)})
}

type fbuf []byte

func (b fbuf) check(pos, n int, what string) {
	if pos < 0 || n < 0 || pos > len(b) || n > len(b)-pos {
		failf("%s at offset %d (%d bytes) is outside the %d-byte file", what, pos, n, len(b))
	}
}

func (b fbuf) u8(pos int, what string) uint8 { b.check(pos, 1, what); return b[pos] }
func (b fbuf) u16(pos int, what string) uint16 {
	b.check(pos, 2, what)
	return binary.LittleEndian.Uint16(b[pos:])
}
func (b fbuf) u32(pos int, what string) uint32 {
	b.check(pos, 4, what)
	return binary.LittleEndian.Uint32(b[pos:])
}
func (b fbuf) u64(pos int, what string) uint64 {
	b.check(pos, 8, what)
	return binary.LittleEndian.Uint64(b[pos:])
}

// deref follows a uoffset stored at pos.
func (b fbuf) deref(pos int, what string) int {
	off := int(b.u32(pos, what))
	t := pos + off
	b.check(t, 0, what)
	return t
}

// table is a flatbuffer table: its position and its vtable.
type table struct {
	b     fbuf
	pos   int
	vt    int
	vtLen int
	what  string
}

func (b fbuf) table(pos int, what string) table {
	so := int32(b.u32(pos, what+" vtable offset"))
	vt := pos - int(so)
	vtLen := int(b.u16(vt, what+" vtable"))
	if vtLen < 4 || vtLen%2 != 0 {
		failf("%s: bad vtable size %d", what, vtLen)
	}
	b.check(vt, vtLen, what+" vtable")
	return table{b: b, pos: pos, vt: vt, vtLen: vtLen, what: what}
}

// field returns the absolute position of field i, or 0 when absent.
func (t table) field(i int) int {
	o := 4 + 2*i
	if o+2 > t.vtLen {
		return 0
	}
	off := int(t.b.u16(t.vt+o, t.what))
	if off == 0 {
		return 0
	}
	return t.pos + off
}

func (t table) has(i int) bool { return t.field(i) != 0 }

func (t table) uint8(i int, def uint8) uint8 {
	if p := t.field(i); p != 0 {
		return t.b.u8(p, t.what)
	}
	return def
}

func (t table) bool(i int) bool { return t.uint8(i, 0) != 0 }

func (t table) int32(i int, def int32) int32 {
	if p := t.field(i); p != 0 {
		return int32(t.b.u32(p, t.what))
	}
	return def
}

func (t table) uint32(i int, def uint32) uint32 {
	if p := t.field(i); p != 0 {
		return t.b.u32(p, t.what)
	}
	return def
}

func (t table) uint64(i int, def uint64) uint64 {
	if p := t.field(i); p != 0 {
		return t.b.u64(p, t.what)
	}
	return def
}

func (t table) float32(i int, def float32) float32 {
	if p := t.field(i); p != 0 {
		return math.Float32frombits(t.b.u32(p, t.what))
	}
	return def
}

// subtable returns the table in field i; ok is false when absent.
func (t table) subtable(i int, what string) (table, bool) {
	p := t.field(i)
	if p == 0 {
		return table{}, false
	}
	return t.b.table(t.b.deref(p, what), what), true
}

// vector returns the element start and length of the vector in field i.
func (t table) vector(i int, elem int, what string) (start, n int) {
	p := t.field(i)
	if p == 0 {
		return 0, 0
	}
	v := t.b.deref(p, what)
	n = int(t.b.u32(v, what+" length"))
	if n < 0 || n > (len(t.b)-v-4)/max(elem, 1) {
		failf("%s: length %d does not fit in the file", what, n)
	}
	return v + 4, n
}

func (t table) string(i int, what string) string {
	s, n := t.vector(i, 1, what)
	if n == 0 {
		return ""
	}
	return string(t.b[s : s+n])
}

func (t table) bytes(i int, what string) []byte {
	s, n := t.vector(i, 1, what)
	if n == 0 {
		return nil
	}
	return t.b[s : s+n : s+n]
}

func (t table) int32s(i int, what string) []int32 {
	s, n := t.vector(i, 4, what)
	if n == 0 {
		return nil
	}
	out := make([]int32, n)
	for k := range out {
		out[k] = int32(binary.LittleEndian.Uint32(t.b[s+4*k:]))
	}
	return out
}

func (t table) ints(i int, what string) []int {
	v := t.int32s(i, what)
	if v == nil {
		return nil
	}
	out := make([]int, len(v))
	for k, x := range v {
		out[k] = int(x)
	}
	return out
}

func (t table) float32s(i int, what string) []float32 {
	s, n := t.vector(i, 4, what)
	if n == 0 {
		return nil
	}
	out := make([]float32, n)
	for k := range out {
		out[k] = math.Float32frombits(binary.LittleEndian.Uint32(t.b[s+4*k:]))
	}
	return out
}

func (t table) int64s(i int, what string) []int64 {
	s, n := t.vector(i, 8, what)
	if n == 0 {
		return nil
	}
	out := make([]int64, n)
	for k := range out {
		out[k] = int64(binary.LittleEndian.Uint64(t.b[s+8*k:]))
	}
	return out
}

// tables calls fn for each table in the vector of tables in field i.
func (t table) tables(i int, what string, fn func(k int, tt table)) int {
	s, n := t.vector(i, 4, what)
	for k := 0; k < n; k++ {
		fn(k, t.b.table(t.b.deref(s+4*k, what), fmt.Sprintf("%s[%d]", what, k)))
	}
	return n
}
