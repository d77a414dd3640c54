package api

import (
	"strconv"
)

// DecodeBatch is Decode for a DetectionBatch, faster on batches of plain
// detections written as json.Marshal writes them (any key order, no
// whitespace, strings of printable ASCII without escapes): those it reads
// itself, without reflection and without a second pass over the payload;
// everything else, and anything it is not sure of, it hands to Decode, so
// what it accepts and the errors it returns are Decode's.
func DecodeBatch(payload []byte, b *DetectionBatch) error {
	if len(payload) <= MaxPayload {
		var fast DetectionBatch
		if p := (batchParser{s: payload}); p.batch(&fast) && p.i == len(p.s) {
			if fast.Validate() == nil {
				*b = fast
				return nil
			}
		}
	}
	return Decode(payload, b)
}

// batchParser reads the fast path's subset of JSON; any method answering
// false means "not in the subset", not "invalid".
type batchParser struct {
	s []byte
	i int
}

func (p *batchParser) lit(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"key":value,...}, calling field with each key (its
// bytes valid until the next read); field reads the value and returns the
// key's bit in a mask: a key twice, or one field does not know (0), is
// not in the subset.
func (p *batchParser) object(field func(key []byte) uint32) bool {
	if !p.lit('{') {
		return false
	}
	if p.lit('}') {
		return true
	}
	var seen uint32
	for {
		k, ok := p.raw()
		if !ok || !p.lit(':') {
			return false
		}
		bit := field(k)
		if bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
		if p.lit('}') {
			return true
		}
		if !p.lit(',') {
			return false
		}
	}
}

func (p *batchParser) batch(b *DetectionBatch) bool {
	return p.object(func(k []byte) uint32 {
		switch string(k) {
		case "device_id":
			var ok bool
			if b.DeviceID, ok = p.str(); ok {
				return 1
			}
		case "events":
			if p.events(b) {
				return 2
			}
		}
		return 0
	})
}

func (p *batchParser) events(b *DetectionBatch) bool {
	if !p.lit('[') {
		return false
	}
	b.Events = make([]Event, 0, 4)
	if p.lit(']') {
		return true
	}
	for {
		b.Events = append(b.Events, Event{})
		if !p.event(&b.Events[len(b.Events)-1]) {
			return false
		}
		if p.lit(']') {
			return true
		}
		if !p.lit(',') {
			return false
		}
	}
}

func (p *batchParser) event(e *Event) bool {
	return p.object(func(k []byte) uint32 {
		var ok bool
		var bit uint32
		switch string(k) {
		case "seq":
			bit = 1
			e.Seq, ok = p.uint()
		case "camera_id":
			bit = 2
			e.CameraID, ok = p.str()
		case "time_us":
			bit = 4
			e.Time, ok = p.int()
		case "model":
			bit = 8
			e.Model, ok = p.str()
		case "model_version":
			bit = 16
			e.ModelVersion, ok = p.str()
		case "class_id":
			bit = 32
			var n int64
			n, ok = p.int()
			e.ClassID = int(n)
			ok = ok && int64(e.ClassID) == n
		case "label":
			bit = 64
			e.Label, ok = p.str()
		case "score":
			bit = 128
			e.Score, ok = p.float()
		case "box":
			bit = 256
			ok = p.box(&e.Box)
		}
		if !ok {
			return 0
		}
		return bit
	})
}

// box reads an array of exactly four numbers.
func (p *batchParser) box(b *[4]float32) bool {
	if !p.lit('[') {
		return false
	}
	for j := range b {
		if j > 0 && !p.lit(',') {
			return false
		}
		var ok bool
		if b[j], ok = p.float(); !ok {
			return false
		}
	}
	return p.lit(']')
}

// str reads a string of printable ASCII without escapes.
func (p *batchParser) str() (string, bool) {
	b, ok := p.raw()
	return string(b), ok
}

// raw reads a string of printable ASCII without escapes and returns its
// bytes, within the payload.
func (p *batchParser) raw() ([]byte, bool) {
	if !p.lit('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// number reads a JSON number and returns its text, within the payload.
func (p *batchParser) number() ([]byte, bool) {
	start := p.i
	p.lit('-')
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	intStart := p.i
	if n := digits(); n == 0 || n > 1 && p.s[intStart] == '0' {
		return nil, false
	}
	if p.lit('.') && digits() == 0 {
		return nil, false
	}
	if p.lit('e') || p.lit('E') {
		if !p.lit('+') {
			p.lit('-')
		}
		if digits() == 0 {
			return nil, false
		}
	}
	return p.s[start:p.i], true
}

// int reads an integer (no fraction, no exponent) that fits int64, as
// encoding/json does.
func (p *batchParser) int() (int64, bool) {
	n, ok := p.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	return v, err == nil
}

// uint reads an integer that fits uint64, as encoding/json does.
func (p *batchParser) uint() (uint64, bool) {
	n, ok := p.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(string(n), 10, 64)
	return v, err == nil
}

// float reads a number that fits a float32, as encoding/json does.
func (p *batchParser) float() (float32, bool) {
	n, ok := p.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(n), 32)
	return float32(v), err == nil
}
