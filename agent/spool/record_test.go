package spool

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"edgefleet/fleet/api"
)

func record(seq uint64, spoolUs uint64, e api.Event) []byte {
	body := appendBody(nil, spoolUs, &e)
	return sealRecord(seqKey(seq), body)
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    api.Event
		want api.Event // zero means e with Seq set
	}{
		{name: "typical", e: ev(7)},
		{name: "empty strings and zeros", e: api.Event{}},
		{name: "negatives and specials", e: api.Event{Time: -5, ClassID: -1, Score: float32(math.Inf(1)), Box: [4]float32{-1, float32(math.MaxFloat32), 0, -0.5}}},
		{name: "unicode label", e: api.Event{CameraID: "dock-3", Label: "Fußgänger 行人"}},
		{
			name: "long field is cut",
			e:    api.Event{Label: strings.Repeat("x", maxField+10)},
			want: api.Event{Label: strings.Repeat("x", maxField)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const seq, spoolUs = 42, 1_700_000_000_123_456
			v := record(seq, spoolUs, tt.e)
			if len(v) > bodySize(&tt.e) {
				t.Fatalf("record is %d bytes, bodySize promised at most %d", len(v), bodySize(&tt.e))
			}
			got, gotUs, err := decodeRecord(seq, v, interner{})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == (api.Event{}) {
				want = tt.e
			}
			want.Seq = seq
			if got != want || gotUs != spoolUs {
				t.Fatalf("decoded %+v at %d, want %+v at %d", got, gotUs, want, uint64(spoolUs))
			}
			if us, ok := recordSpoolTime(v); !ok || us != spoolUs {
				t.Fatalf("recordSpoolTime = %d, %v", us, ok)
			}
		})
	}
	// NaN does not compare equal; check its bits survive.
	e := api.Event{Score: float32(math.NaN())}
	got, _, err := decodeRecord(1, record(1, 1, e), nil)
	if err != nil || math.Float32bits(got.Score) != math.Float32bits(e.Score) {
		t.Fatalf("NaN score: %v, %v", got.Score, err)
	}
}

func TestRecordCorruption(t *testing.T) {
	good := record(9, 100, ev(1))
	tests := []struct {
		name string
		seq  uint64
		v    []byte
	}{
		{"empty", 9, nil},
		{"short", 9, good[:3]},
		{"truncated", 9, good[:len(good)-1]},
		{"flipped bit", 9, func() []byte { v := bytes.Clone(good); v[10] ^= 1; return v }()},
		{"wrong key", 10, good},
		{"extra byte", 9, append(bytes.Clone(good), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeRecord(tt.seq, tt.v, nil)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Seq != tt.seq || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want CorruptError naming seq %d", err, tt.seq)
			}
			if !strings.Contains(err.Error(), "seq 9") && !strings.Contains(err.Error(), "seq 10") {
				t.Fatalf("error %q does not name the seq", err)
			}
		})
	}
}

// FuzzDecodeBody feeds arbitrary bodies to the parser behind the CRC: it must
// never panic, and what it accepts must re-encode to the same bytes, except
// for non-minimal varints, which the encoder never writes.
func FuzzDecodeBody(f *testing.F) {
	for _, e := range []api.Event{ev(1), {}, {Label: "a", CameraID: "b"}, analyticsEvent(1, 6), analyticsEvent(2, 0)} {
		f.Add(appendBody(nil, 12345, &e))
	}
	f.Add([]byte{recordFormat2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{recordFormat})
	f.Add([]byte{recordFormat, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, us, err := decodeBody(b, interner{})
		if err != nil {
			return
		}
		again := appendBody(nil, us, &e)
		e2, us2, err := decodeBody(again, nil)
		if err != nil || us2 != us || !reflect.DeepEqual(e2, e) && !hasNaN(e) {
			t.Fatalf("re-encoded body decodes differently: %+v %d vs %+v %d (%v)", e2, us2, e, us, err)
		}
	})
}

// FuzzDecodeRecord checks the full record path, CRC included: no panics,
// and any error names the seq.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(uint64(1), record(1, 5, ev(1)))
	f.Add(uint64(7), []byte{})
	f.Add(uint64(1<<63), record(1<<63, 5, api.Event{}))
	f.Add(uint64(3), record(3, 5, analyticsEvent(3, 10)))
	f.Fuzz(func(t *testing.T, seq uint64, v []byte) {
		_, _, err := decodeRecord(seq, v, interner{})
		var ce *CorruptError
		if err != nil && (!errors.As(err, &ce) || ce.Seq != seq) {
			t.Fatalf("error %v does not name seq %d", err, seq)
		}
	})
}

// TestRecordGolden pins the format 2 record (schema 2): files written by
// earlier builds must stay readable. TestRecordGoldenV3 pins what this build
// writes; a change there needs a new recordFormat and an upgrade step.
func TestRecordGolden(t *testing.T) {
	const golden = "028180f9c0c1c482038280f28183898506025c8f023f0000803f000000400000f441000021420563616d2d3107796f6c6f76386e05312e322e3006706572736f6e66e12017"
	v, _ := hex.DecodeString(golden)
	e, us, err := decodeRecord(7, v, nil)
	want := ev(1)
	want.Seq = 7
	if err != nil || e != want || us != 1_700_000_000_000_001 {
		t.Fatalf("golden record decodes to %+v, %d, %v", e, us, err)
	}
}

// hasNaN: a NaN float does not compare equal to itself.
func hasNaN(e api.Event) bool {
	fs := append([]float32{e.Score}, e.Box[:]...)
	if e.Track != nil {
		for _, p := range e.Track.Path {
			fs = append(fs, p[0], p[1])
		}
	}
	for _, f := range fs {
		if f != f {
			return true
		}
	}
	return false
}
