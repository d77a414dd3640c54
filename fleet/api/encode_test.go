package api

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// record is store.Record's shape (store imports api).
type record struct {
	Device string `json:"device_id"`
	Event
}

// TestAppendBatch: AppendBatch and AppendRecord write what json.Marshal writes, for plain
// detections, odd strings and floats, and events it hands to json.Marshal.
func TestAppendBatch(t *testing.T) {
	det := Event{Seq: 7, CameraID: "cam0", Time: 1700000000123456, Model: "yolo", ModelVersion: "3", ClassID: 2, Label: "person",
		Score: 0.8125, Box: [4]float32{1.5, 2, 300.25, 479.9}}
	odd := det
	odd.Label, odd.Model, odd.ModelVersion = `a"b\c<d>&é`+"\x01\u2028", "", ""
	odd.Score, odd.Box = 1e-7, [4]float32{-0, 1e21, -3.4e38, 123456789}
	odd.ClassID = -1
	track := det
	track.Type, track.V, track.Track = TypeTrackEnd, 1, &TrackInfo{ID: 4}
	tests := []struct {
		name   string
		device string
		events []Event
	}{
		{"detection", "dev-1", []Event{det}},
		{"several", "dev-1", []Event{det, odd, det}},
		{"odd strings and floats", "dév\"1", []Event{odd}},
		{"analytics event", "dev-1", []Event{det, track}},
		{"empty", "dev-1", []Event{}},
		{"nil", "dev-1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(&DetectionBatch{DeviceID: tt.device, Events: tt.events})
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendBatch([]byte("x"), tt.device, tt.events); !bytes.Equal(got[1:], want) || got[0] != 'x' {
				t.Errorf("appendBatch:\n got %s\nwant x%s", got, want)
			}
			for i := range tt.events {
				want, err := json.Marshal(&record{Device: tt.device, Event: tt.events[i]})
				if err != nil {
					t.Fatal(err)
				}
				if got := AppendRecord([]byte("x"), tt.device, &tt.events[i]); !bytes.Equal(got[1:], want) || got[0] != 'x' {
					t.Errorf("AppendRecord:\n got %s\nwant x%s", got, want)
				}
			}
		})
	}
	// Random plain detections, as the simulator makes them.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		e := det
		e.Seq, e.Time = r.Uint64(), r.Int64()-math.MaxInt64/2
		e.Score = math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(e.Score)) || math.IsInf(float64(e.Score), 0) {
			e.Score = r.Float32()
		}
		for i := range e.Box {
			e.Box[i] = r.Float32() * 1000
		}
		want, _ := json.Marshal(&DetectionBatch{DeviceID: "d", Events: []Event{e}})
		if got := AppendBatch(nil, "d", []Event{e}); !bytes.Equal(got, want) {
			t.Fatalf("appendBatch:\n got %s\nwant %s", got, want)
		}
	}
}

// BenchmarkAppendBatch is the simulator's encoding of one batch of three.
func BenchmarkAppendBatch(b *testing.B) {
	ev := Event{Seq: 7, CameraID: "cam0", Time: 1700000000123456, Model: "yolo-sim", ModelVersion: "1", Label: "person", Score: 0.8125, Box: [4]float32{1.5, 2, 300.25, 479.9}}
	events := []Event{ev, ev, ev}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBatch(buf[:0], "sim-123", events)
	}
}

// TestAppendNonFinite: where json.Marshal fails, nothing is appended.
func TestAppendNonFinite(t *testing.T) {
	for _, f := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		e := Event{Seq: 1, CameraID: "c", Score: f}
		if got := AppendRecord([]byte("x"), "d", &e); string(got) != "x" {
			t.Errorf("AppendRecord with score %v = %s", f, got)
		}
		e.Score, e.Box[2] = 0.5, f
		if got := AppendBatch([]byte("x"), "d", []Event{e}); string(got) != "x" {
			t.Errorf("AppendBatch with box %v = %s", f, got)
		}
	}
}
