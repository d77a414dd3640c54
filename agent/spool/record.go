package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"edgefleet/fleet/api"
)

// Record layout (schema version 3), the value stored under an 8-byte
// big-endian seq key in the events bucket:
//
//	[0]      recordFormat (3; format 2 records, written by schema 2, are
//	         the same without the analytics part and are still read)
//	uvarint  spool time, unix microseconds (when Append was called; drives MaxAge)
//	varint   Event.Time (capture time, unix microseconds)
//	varint   Event.ClassID
//	4 bytes  Event.Score, float32 bits, little endian
//	16 bytes Event.Box, 4 × float32 bits, little endian
//	4 × (uvarint length, bytes): CameraID, Model, ModelVersion, Label
//	analytics part, only when Event.Type is not "" (a detection ends here):
//	  uvarint length, bytes: Type
//	  uvarint  V
//	  1 byte   flags: 1 Track, 2 Line, 4 Zone, 8 Snapshot
//	  Track:    uvarint ID, varint FirstUs, varint LastUs, varint Frames,
//	            uvarint n ≤ maxPath, n × 2 × float32 bits
//	  Line:     2 × (uvarint length, bytes): Line, Direction
//	  Zone:     uvarint length, bytes: Zone; varint DwellMs
//	  Snapshot: varint TimeUs, 2 × (uvarint length ≤ maxSnapshotPart, bytes): Crop, Thumb
//	4 bytes  CRC-32C (Castagnoli) over key || everything above, little endian
//
// The CRC covers the key so that a value found under the wrong seq is caught
// too. A typical detection takes about 60 bytes, as in format 2; an
// analytics event adds its payload, and its snapshot's bytes, which count in
// the byte budget like everything else.
const recordFormat = 3

// recordFormat2 is the detection-only format of schema 2, still decoded.
const recordFormat2 = 2

// Bounds of the analytics part. Snapshot parts are kept up to the largest
// payload the link could ever send (the link, not the spool, refuses an
// event that can never fit a batch); a path is cut to maxPath points.
const (
	maxPath         = 4 * api.MaxPath
	maxSnapshotPart = api.MaxPayload
)

const (
	flagTrack    = 1
	flagLine     = 2
	flagZone     = 4
	flagSnapshot = 8
)

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
		dst = appendString(dst, s)
	}
	if e.Type == api.TypeDetection {
		return dst
	}
	return appendAnalytics(dst, e)
}

func appendString(dst []byte, s string) []byte {
	if len(s) > maxField {
		s = s[:maxField]
	}
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst, b []byte) []byte {
	if len(b) > maxSnapshotPart {
		b = b[:maxSnapshotPart]
	}
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// appendAnalytics encodes the analytics part of e (format 3).
func appendAnalytics(dst []byte, e *api.Event) []byte {
	dst = appendString(dst, e.Type)
	dst = binary.AppendUvarint(dst, uint64(max(e.V, 0)))
	var flags byte
	for i, present := range [...]bool{e.Track != nil, e.Line != nil, e.Zone != nil, e.Snapshot != nil} {
		if present {
			flags |= 1 << i
		}
	}
	dst = append(dst, flags)
	if t := e.Track; t != nil {
		dst = binary.AppendUvarint(dst, t.ID)
		dst = binary.AppendVarint(dst, t.FirstUs)
		dst = binary.AppendVarint(dst, t.LastUs)
		dst = binary.AppendVarint(dst, int64(t.Frames))
		path := t.Path[:min(len(t.Path), maxPath)]
		dst = binary.AppendUvarint(dst, uint64(len(path)))
		for _, p := range path {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(p[0]))
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(p[1]))
		}
	}
	if l := e.Line; l != nil {
		dst = appendString(dst, l.Line)
		dst = appendString(dst, l.Direction)
	}
	if z := e.Zone; z != nil {
		dst = appendString(dst, z.Zone)
		dst = binary.AppendVarint(dst, z.DwellMs)
	}
	if s := e.Snapshot; s != nil {
		dst = binary.AppendVarint(dst, s.TimeUs)
		dst = appendBytes(dst, s.Crop)
		dst = appendBytes(dst, s.Thumb)
	}
	return dst
}

// bodySize is an upper bound of the bytes appendBody writes plus the CRC.
func bodySize(e *api.Event) int {
	n := 1 + 10 + 10 + 10 + 4 + 16 + 4
	for _, s := range [...]string{e.CameraID, e.Model, e.ModelVersion, e.Label} {
		n += min(len(s), maxField) + 3
	}
	if e.Type == api.TypeDetection {
		return n
	}
	n += min(len(e.Type), maxField) + 3 + 10 + 1
	if t := e.Track; t != nil {
		n += 4*10 + 10 + 8*min(len(t.Path), maxPath)
	}
	if l := e.Line; l != nil {
		n += min(len(l.Line), maxField) + min(len(l.Direction), maxField) + 6
	}
	if z := e.Zone; z != nil {
		n += min(len(z.Zone), maxField) + 3 + 10
	}
	if s := e.Snapshot; s != nil {
		n += 10 + min(len(s.Crop), maxSnapshotPart) + min(len(s.Thumb), maxSnapshotPart) + 10
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
	if len(v) < 2 || (v[0] != recordFormat && v[0] != recordFormat2) {
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
	format := b[0]
	if format != recordFormat && format != recordFormat2 {
		return e, 0, fmt.Errorf("record format %d, want %d or %d", format, recordFormat2, recordFormat)
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
	var err error
	for i, dst := range [...]*string{&e.CameraID, &e.Model, &e.ModelVersion, &e.Label} {
		if *dst, b, err = readString(b, in); err != nil {
			return e, 0, fmt.Errorf("string field %d: %w", i, err)
		}
	}
	if format == recordFormat && len(b) != 0 {
		if b, err = decodeAnalytics(b, &e, in); err != nil {
			return e, 0, err
		}
	}
	if len(b) != 0 {
		return e, 0, fmt.Errorf("%d trailing bytes", len(b))
	}
	return e, spoolTime, nil
}

var errLength = errors.New("bad length")

// readString reads a uvarint length and that many bytes as a string.
func readString(b []byte, in interner) (string, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > maxField || l > uint64(len(b)-n) {
		return "", b, errLength
	}
	b = b[n:]
	if in != nil {
		return in.get(b[:l]), b[l:], nil
	}
	return string(b[:l]), b[l:], nil
}

// readBytes reads a uvarint length and that many bytes, copied.
func readBytes(b []byte) ([]byte, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > maxSnapshotPart || l > uint64(len(b)-n) {
		return nil, b, errLength
	}
	b = b[n:]
	if l == 0 {
		return nil, b, nil
	}
	return append([]byte(nil), b[:l]...), b[l:], nil
}

// reader reads varints off a buffer and remembers the first failure.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("bad %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("bad %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str(what string, in interner) string {
	if r.err != nil {
		return ""
	}
	s, rest, err := readString(r.b, in)
	if err != nil {
		r.err = fmt.Errorf("%s: %w", what, err)
	}
	r.b = rest
	return s
}

func (r *reader) bytes(what string) []byte {
	if r.err != nil {
		return nil
	}
	v, rest, err := readBytes(r.b)
	if err != nil {
		r.err = fmt.Errorf("%s: %w", what, err)
	}
	r.b = rest
	return v
}

// decodeAnalytics parses the analytics part of a format 3 record into e.
func decodeAnalytics(b []byte, e *api.Event, in interner) ([]byte, error) {
	r := &reader{b: b}
	e.Type = r.str("type", in)
	v := r.uvarint("version")
	if r.err == nil && (v > math.MaxInt32 || e.Type == api.TypeDetection) {
		r.err = errors.New("bad type or version")
	}
	e.V = int(v)
	if r.err != nil {
		return b, r.err
	}
	if len(r.b) < 1 || r.b[0]&^(flagTrack|flagLine|flagZone|flagSnapshot) != 0 {
		return b, errors.New("bad analytics flags")
	}
	flags := r.b[0]
	r.b = r.b[1:]
	if flags&flagTrack != 0 {
		t := &api.TrackInfo{ID: r.uvarint("track id"), FirstUs: r.varint("track first_us"), LastUs: r.varint("track last_us")}
		frames := r.varint("track frames")
		n := r.uvarint("track path length")
		if r.err == nil && (frames < math.MinInt32 || frames > math.MaxInt32 || n > maxPath || n*8 > uint64(len(r.b))) {
			r.err = errors.New("bad track frames or path")
		}
		if r.err != nil {
			return b, r.err
		}
		t.Frames = int(frames)
		for range n {
			t.Path = append(t.Path, [2]float32{math.Float32frombits(binary.LittleEndian.Uint32(r.b)), math.Float32frombits(binary.LittleEndian.Uint32(r.b[4:]))})
			r.b = r.b[8:]
		}
		e.Track = t
	}
	if flags&flagLine != 0 {
		e.Line = &api.LineCross{Line: r.str("line", in), Direction: r.str("line direction", in)}
	}
	if flags&flagZone != 0 {
		e.Zone = &api.ZoneInfo{Zone: r.str("zone", in), DwellMs: r.varint("zone dwell")}
	}
	if flags&flagSnapshot != 0 {
		e.Snapshot = &api.EventSnapshot{TimeUs: r.varint("snapshot time")}
		e.Snapshot.Crop = r.bytes("snapshot crop")
		e.Snapshot.Thumb = r.bytes("snapshot thumb")
	}
	return r.b, r.err
}
