package api

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tinyJPEG is enough of a JPEG for the wire format (it only checks the
// start-of-image marker; fleetd passes the bytes through).
var tinyJPEG = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0, 0xFF, 0xD9}

func sampleReply() *SnapshotReply {
	return &SnapshotReply{
		Header: SnapshotHeader{DeviceID: "cam-box-1", RequestID: "3f2a9c0d5e7b4a1f8c6d2e0b9a7f5c3d", Camera: "cam-a",
			Width: 640, Height: 480, Time: 1764028800123},
		JPEG: tinyJPEG,
	}
}

// TestSnapshotGolden pins the binary wire form of a reply (run with -update
// to accept a change) and parses it back.
func TestSnapshotGolden(t *testing.T) {
	for name, r := range map[string]*SnapshotReply{
		"snapshot_reply": sampleReply(),
		"snapshot_error": {Header: SnapshotHeader{DeviceID: "cam-box-1", RequestID: "r-1", Camera: "cam-z",
			Error: SnapshotUnknownCamera, Reason: `no camera "cam-z" (cameras: cam-a)`}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := EncodeSnapshotReply(r)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".golden.bin")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./fleet/api -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("wire form of %s changed:\n got: %q\nwant: %q", name, got, want)
			}
			back, err := ParseSnapshotReply(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&back, r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back, r)
			}
		})
	}
}

func TestParseSnapshotReplyErrors(t *testing.T) {
	frame := func(header string, body []byte) []byte {
		b := binary.BigEndian.AppendUint16([]byte(SnapshotMagic), uint16(len(header)))
		return append(append(b, header...), body...)
	}
	ok := `{"device_id":"d","request_id":"r","camera":"c"}`
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"empty", nil, "magic"},
		{"other magic", []byte("EFSNAP2\n\x00\x02{}"), "magic"},
		{"no length", []byte(SnapshotMagic + "\x00"), "truncated header length"},
		{"length past end", append([]byte(SnapshotMagic), 0, 200, '{', '}'), "header length 200"},
		{"header too long", frame(ok+strings.Repeat(" ", MaxSnapshotHeader), tinyJPEG), "header length"},
		{"header not json", frame("{", tinyJPEG), "unexpected EOF"},
		{"unknown field", frame(`{"device_id":"d","request_id":"r","camera":"c","x":1}`, tinyJPEG), `unknown field "x"`},
		{"bad device", frame(`{"device_id":"d/e","request_id":"r","camera":"c"}`, tinyJPEG), "device_id"},
		{"no request", frame(`{"device_id":"d","camera":"c"}`, tinyJPEG), "request_id: empty id"},
		{"bad camera", frame(`{"device_id":"d","request_id":"r","camera":"+"}`, tinyJPEG), "camera:"},
		{"unknown code", frame(`{"device_id":"d","request_id":"r","camera":"c","error":"boom"}`, nil), `unknown error code "boom"`},
		{"negative size", frame(`{"device_id":"d","request_id":"r","camera":"c","width":-1}`, tinyJPEG), "negative size"},
		{"no image", frame(ok, nil), "no JPEG image"},
		{"not a jpeg", frame(ok, []byte("\x89PNG")), "no JPEG image"},
		{"error with image", frame(`{"device_id":"d","request_id":"r","camera":"c","error":"no_frame"}`, tinyJPEG), "error no_frame with 13 bytes"},
		{"too large", frame(ok, append([]byte{0xFF, 0xD8}, make([]byte, MaxPayload)...)), "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSnapshotReply(tt.payload)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want ErrBadSnapshot containing %q", err, tt.want)
			}
		})
	}
}

// TestSnapshotSizeCap: the largest JPEG allowed fits in MaxPayload with the
// largest header; one byte more is refused on both sides.
func TestSnapshotSizeCap(t *testing.T) {
	r := sampleReply()
	r.Header.Reason = ""
	r.JPEG = append([]byte{0xFF, 0xD8}, make([]byte, MaxSnapshotBytes-2)...)
	b, err := EncodeSnapshotReply(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxPayload {
		t.Fatalf("reply of %d bytes exceeds MaxPayload %d", len(b), MaxPayload)
	}
	if _, err := ParseSnapshotReply(b); err != nil {
		t.Fatal(err)
	}
	r.JPEG = append(r.JPEG, 0)
	if _, err := EncodeSnapshotReply(r); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("encode of %d bytes: %v, want ErrBadSnapshot", len(r.JPEG), err)
	}
}

// FuzzParseSnapshotReply: no panic on any input; an error names the
// contract; an accepted reply re-encodes to a reply that parses equal.
func FuzzParseSnapshotReply(f *testing.F) {
	for _, name := range []string{"snapshot_reply", "snapshot_error"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name+".golden.bin")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(SnapshotMagic))
	f.Add([]byte(SnapshotMagic + "\x00\x02{}\xFF\xD8"))
	f.Add([]byte(SnapshotMagic + "\xff\xff"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := ParseSnapshotReply(payload)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) || !strings.HasPrefix(err.Error(), "api: ") {
				t.Fatalf("error %q is not ErrBadSnapshot", err)
			}
			return
		}
		again, err := EncodeSnapshotReply(&r)
		if err != nil {
			t.Fatalf("accepted reply does not encode: %v", err)
		}
		back, err := ParseSnapshotReply(again)
		if err != nil {
			t.Fatalf("re-encoded reply does not parse: %v", err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip changed the reply:\n%+v\n%+v", r, back)
		}
	})
}
