package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"edgefleet/fleet/api"
)

// TestAppendBatch: appendBatch writes what json.Marshal writes, for plain
// detections, odd strings and floats, and events it hands to json.Marshal.
func TestAppendBatch(t *testing.T) {
	det := api.Event{Seq: 7, CameraID: "cam0", Time: 1700000000123456, Model: "yolo", ModelVersion: "3", ClassID: 2, Label: "person",
		Score: 0.8125, Box: [4]float32{1.5, 2, 300.25, 479.9}}
	odd := det
	odd.Label, odd.Model, odd.ModelVersion = `a"b\c<d>&é`+"\x01\u2028", "", ""
	odd.Score, odd.Box = 1e-7, [4]float32{-0, 1e21, -3.4e38, 123456789}
	odd.ClassID = -1
	track := det
	track.Type, track.V, track.Track = api.TypeTrackEnd, 1, &api.TrackInfo{ID: 4}
	tests := []struct {
		name   string
		device string
		events []api.Event
	}{
		{"detection", "dev-1", []api.Event{det}},
		{"several", "dev-1", []api.Event{det, odd, det}},
		{"odd strings and floats", "dév\"1", []api.Event{odd}},
		{"analytics event", "dev-1", []api.Event{det, track}},
		{"empty", "dev-1", []api.Event{}},
		{"nil", "dev-1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(&api.DetectionBatch{DeviceID: tt.device, Events: tt.events})
			if err != nil {
				t.Fatal(err)
			}
			if got := appendBatch([]byte("x"), tt.device, tt.events); !bytes.Equal(got[1:], want) || got[0] != 'x' {
				t.Errorf("appendBatch:\n got %s\nwant x%s", got, want)
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
		want, _ := json.Marshal(&api.DetectionBatch{DeviceID: "d", Events: []api.Event{e}})
		if got := appendBatch(nil, "d", []api.Event{e}); !bytes.Equal(got, want) {
			t.Fatalf("appendBatch:\n got %s\nwant %s", got, want)
		}
	}
}

// BenchmarkAppendBatch is the simulator's encoding of one batch of three.
func BenchmarkAppendBatch(b *testing.B) {
	ev := api.Event{Seq: 7, CameraID: SimCamera, Time: 1700000000123456, Model: "yolo-sim", ModelVersion: "1", Label: "person", Score: 0.8125, Box: [4]float32{1.5, 2, 300.25, 479.9}}
	events := []api.Event{ev, ev, ev}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendBatch(buf[:0], "sim-123", events)
	}
}

// FuzzParseAck: what parseAck reads, api.Decode reads the same; acks in
// fleetd's form are read.
func FuzzParseAck(f *testing.F) {
	for _, s := range []string{
		`{"device_id":"sim-1","ranges":[{"from":1,"to":3}]}`,
		`{"device_id":"sim-1","ranges":[{"from":1,"to":3},{"from":5,"to":18446744073709551615}]}`,
		`{"device_id":"sim-1","ranges":[{"from":01,"to":3}]}`,
		`{"device_id":"sim-1","ranges":[{"from":1,"to":3}]} `,
		`{"device_id":"sim-1","ranges":[{"from":1,"to":18446744073709551616}]}`,
		`{"device_id":"sim-1","ranges":[]}`,
		`{"ranges":[{"from":1,"to":3}],"device_id":"sim-1"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseAck(nil, []byte(s), "sim-1")
		if !ok {
			return
		}
		var a api.Ack
		if err := api.Decode([]byte(s), &a); err != nil {
			t.Fatalf("parseAck read %s, api.Decode: %v", s, err)
		}
		if a.DeviceID != "sim-1" || !slices.Equal(got, a.Ranges) {
			t.Fatalf("parseAck(%s) = %v, api.Decode %+v", s, got, a)
		}
	})
}

// TestParseAck: fleetd's acks are read without api.Decode.
func TestParseAck(t *testing.T) {
	tests := []struct {
		ack  string
		want []api.SeqRange
		ok   bool
	}{
		{`{"device_id":"sim-1","ranges":[{"from":1,"to":3}]}`, []api.SeqRange{{From: 1, To: 3}}, true},
		{`{"device_id":"sim-1","ranges":[{"from":1,"to":3},{"from":5,"to":5}]}`, []api.SeqRange{{From: 1, To: 3}, {From: 5, To: 5}}, true},
		{`{"device_id":"sim-12","ranges":[{"from":1,"to":3}]}`, nil, false},
		{`{"device_id":"sim-1","ranges":[{"from":1,"to":3}]}x`, nil, false},
		{`{"device_id":"sim-1", "ranges":[{"from":1,"to":3}]}`, nil, false},
	}
	for _, tt := range tests {
		got, ok := parseAck(nil, []byte(tt.ack), "sim-1")
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("parseAck(%s) = %v, %v; want %v, %v", tt.ack, got, ok, tt.want, tt.ok)
		}
	}
}
