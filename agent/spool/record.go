package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"edgefleet/fleet/api"
)

// Record layout (schema version 2), the value stored under an 8-byte
// big-endian seq key in the events bucket:
//
//	[0]      recordFormat (2)
//	uvarint  spool time, unix microseconds (when Append was called; drives MaxAge)
//	varint   Event.Time (capture time, unix microseconds)
//	varint   Event.ClassID
//	4 bytes  Event.Score, float32 bits, little endian
//	16 bytes Event.Box, 4 × float32 bits, little endian
//	4 × (uvarint length, bytes): CameraID, Model, ModelVersion, Label
//	4 bytes  CRC-32C (Castagnoli) over key || everything above, little endian
//
// The CRC covers the key so that a value found under the wrong seq is caught
// too. A typical detection takes about 60 bytes.
const recordFormat = 2

// maxField bounds each string field of a record; longer strings are cut at
// encode time so one bad event cannot make a record unbounded.
const maxField = 1 << 12

// elemOverhead is what bbolt spends on each key/value beyond their bytes
// (its leaf element header); it is counted in Stats.Bytes so the byte budget
// tracks the file rather than only the payload.
const elemOverhead = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by the errors returned for a record that cannot be
// decoded; errors.As with *CorruptError gives its seq.
var ErrCorrupt = errors.New("spool: corrupt record")

// CorruptError names the seq of a record that failed to decode.
type CorruptError struct {
	Seq    uint64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool: corrupt record at seq %d: %s", e.Seq, e.Reason)
}

// CorruptSeq returns Seq; the link's Sender looks for this method to skip
// (acknowledge) a record that can never be sent.
func (e *CorruptError) CorruptSeq() uint64 { return e.Seq }

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// appendBody encodes e (without its Seq, which is the key) into dst and
// returns it with spare capacity for the CRC that sealRecord appends.
func appendBody(dst []byte, spoolTimeUs uint64, e *api.Event) []byte {
	dst = append(dst, recordFormat)
	dst = binary.AppendUvarint(dst, spoolTimeUs)
	dst = binary.AppendVarint(dst, e.Time)
	dst = binary.AppendVarint(dst, int64(e.ClassID))
	dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(e.Score))
	for _, f := range e.Box {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
	}
	for _, s := range [...]string{e.CameraID, e.Model, e.ModelVersion, e.Label} {
		if len(s) > maxField {
			s = s[:maxField]
		}
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// bodySize is an upper bound of the bytes appendBody writes plus the CRC.
func bodySize(e *api.Event) int {
	n := 1 + 10 + 10 + 10 + 4 + 16 + 4
	for _, s := range [...]string{e.CameraID, e.Model, e.ModelVersion, e.Label} {
		n += min(len(s), maxField) + 3
	}
	return n
}

// sealRecord appends the CRC over key||body.
func sealRecord(key, body []byte) []byte {
	crc := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body)
	return binary.LittleEndian.AppendUint32(body, crc)
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func keySeq(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}

// recordSpoolTime reads only the spool time of a record, without checking
// its CRC; used by the age sweep.
func recordSpoolTime(v []byte) (uint64, bool) {
	if len(v) < 2 || v[0] != recordFormat {
		return 0, false
	}
	t, n := binary.Uvarint(v[1:])
	return t, n > 0
}

// interner shares the strings of one Next call's events: camera, model and
// label repeat, so most lookups do not allocate.
type interner map[string]string

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	if len(in) > 256 {
		return string(b)
	}
	s := string(b)
	in[s] = s
	return s
}

// decodeRecord checks the CRC and decodes a record stored under seq.
func decodeRecord(seq uint64, v []byte, in interner) (api.Event, uint64, error) {
	if len(v) < 5 {
		return api.Event{}, 0, &CorruptError{Seq: seq, Reason: fmt.Sprintf("%d bytes is too short", len(v))}
	}
	body, sum := v[:len(v)-4], binary.LittleEndian.Uint32(v[len(v)-4:])
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], seq)
	if got := crc32.Update(crc32.Checksum(key[:], castagnoli), castagnoli, body); got != sum {
		return api.Event{}, 0, &CorruptError{Seq: seq, Reason: fmt.Sprintf("crc %08x, want %08x", got, sum)}
	}
	e, t, err := decodeBody(body, in)
	if err != nil {
		return api.Event{}, 0, &CorruptError{Seq: seq, Reason: err.Error()}
	}
	e.Seq = seq
	return e, t, nil
}

// decodeBody parses a record body (no CRC). It never panics on bad input.
func decodeBody(b []byte, in interner) (api.Event, uint64, error) {
	var e api.Event
	if len(b) < 1 {
		return e, 0, errors.New("empty record")
	}
	if b[0] != recordFormat {
		return e, 0, fmt.Errorf("record format %d, want %d", b[0], recordFormat)
	}
	b = b[1:]
	spoolTime, n := binary.Uvarint(b)
	if n <= 0 {
		return e, 0, errors.New("bad spool time")
	}
	b = b[n:]
	capTime, n := binary.Varint(b)
	if n <= 0 {
		return e, 0, errors.New("bad capture time")
	}
	e.Time = capTime
	b = b[n:]
	class, n := binary.Varint(b)
	if n <= 0 || class < math.MinInt32 || class > math.MaxInt32 {
		return e, 0, errors.New("bad class id")
	}
	e.ClassID = int(class)
	b = b[n:]
	if len(b) < 20 {
		return e, 0, errors.New("short score and box")
	}
	e.Score = math.Float32frombits(binary.LittleEndian.Uint32(b))
	for i := range e.Box {
		e.Box[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4+4*i:]))
	}
	b = b[20:]
	for i, dst := range [...]*string{&e.CameraID, &e.Model, &e.ModelVersion, &e.Label} {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > maxField || l > uint64(len(b)-n) {
			return e, 0, fmt.Errorf("bad length of string field %d", i)
		}
		b = b[n:]
		if in != nil {
			*dst = in.get(b[:l])
		} else {
			*dst = string(b[:l])
		}
		b = b[l:]
	}
	if len(b) != 0 {
		return e, 0, fmt.Errorf("%d trailing bytes", len(b))
	}
	return e, spoolTime, nil
}
