package store

import (
	"encoding/binary"
	"errors"
	"math"

	"edgefleet/fleet/api"
)

// Record values in the events bucket are binary, about a fifth of their
// JSON size, so a commit writes fewer pages. Device, seq and time are in the
// key. Layout, format 1:
//
//	0x01 | camera | label | class_id (zigzag varint) | score (f32) | box (4 x f32) | model | model_version
//
// where each string is a uvarint length and its bytes, floats little endian.
const valueFormat = 1

var errBadValue = errors.New("bad record value")

func encodeValue(e *api.Event) []byte {
	b := make([]byte, 0, 32+len(e.CameraID)+len(e.Label)+len(e.Model)+len(e.ModelVersion))
	b = append(b, valueFormat)
	b = appendStr(b, e.CameraID)
	b = appendStr(b, e.Label)
	b = binary.AppendVarint(b, int64(e.ClassID))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(e.Score))
	for _, f := range e.Box {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	b = appendStr(b, e.Model)
	return appendStr(b, e.ModelVersion)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeValue fills r from an events key position and value.
func decodeValue(p position, v []byte, r *Record) error {
	if len(v) == 0 || v[0] != valueFormat {
		return errBadValue
	}
	d := decoder{b: v[1:]}
	*r = Record{Device: p.device}
	r.Seq, r.Time = p.seq, int64(p.time)
	r.CameraID = d.str()
	r.Label = d.str()
	r.ClassID = int(d.varint())
	r.Score = d.f32()
	for i := range r.Box {
		r.Box[i] = d.f32()
	}
	r.Model = d.str()
	r.ModelVersion = d.str()
	if d.err || len(d.b) != 0 {
		return errBadValue
	}
	return nil
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) str() string {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err, d.b = true, nil
		return ""
	}
	s := string(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return s
}

func (d *decoder) varint() int64 {
	n, k := binary.Varint(d.b)
	if k <= 0 || n < math.MinInt32 || n > math.MaxInt32 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *decoder) f32() float32 {
	if len(d.b) < 4 {
		d.err, d.b = true, nil
		return 0
	}
	f := math.Float32frombits(binary.LittleEndian.Uint32(d.b))
	d.b = d.b[4:]
	return f
}
