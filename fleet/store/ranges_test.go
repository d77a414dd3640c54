package store

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"edgefleet/fleet/api"
)

func TestRangeSet(t *testing.T) {
	tests := []struct {
		name string
		add  []uint64
		want rangeSet
	}{
		{"empty", nil, nil},
		{"contiguous", []uint64{1, 2, 3}, rangeSet{{1, 3}}},
		{"gap", []uint64{1, 2, 5}, rangeSet{{1, 2}, {5, 5}}},
		{"fill gap", []uint64{1, 2, 5, 4, 3}, rangeSet{{1, 5}}},
		{"out of order", []uint64{9, 3, 1, 2}, rangeSet{{1, 3}, {9, 9}}},
		{"repeat", []uint64{4, 4, 4}, rangeSet{{4, 4}}},
		{"max", []uint64{^uint64(0) - 1, ^uint64(0)}, rangeSet{{^uint64(0) - 1, ^uint64(0)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rs rangeSet
			for _, s := range tt.add {
				rs = rs.add(s)
			}
			if len(rs) != len(tt.want) {
				t.Fatalf("got %v, want %v", rs, tt.want)
			}
			for i := range rs {
				if rs[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", rs, tt.want)
				}
			}
			back, err := decodeRanges(rs.encode())
			if err != nil || len(back) != len(rs) {
				t.Fatalf("round trip: %v, %v", back, err)
			}
		})
	}
}

func TestRangeSetRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var rs rangeSet
	in := map[uint64]bool{}
	for range 5000 {
		s := r.Uint64N(2000)
		rs = rs.add(s)
		in[s] = true
	}
	for s := range uint64(2100) {
		if rs.has(s) != in[s] {
			t.Fatalf("has(%d) = %v, want %v", s, rs.has(s), in[s])
		}
	}
	for i := 1; i < len(rs); i++ {
		if rs[i-1].to+1 >= rs[i].from {
			t.Fatalf("ranges %v and %v not disjoint and separated", rs[i-1], rs[i])
		}
	}
}

func FuzzDecodeRanges(f *testing.F) {
	f.Add(rangeSet{{1, 5}, {9, 9}}.encode())
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := decodeRanges(b)
		if err != nil {
			return
		}
		for i := 1; i < len(rs); i++ {
			if rs[i-1].to >= rs[i].from {
				t.Fatalf("accepted overlapping %v", rs)
			}
		}
	})
}

func FuzzDecodeValue(f *testing.F) {
	f.Add(encodeValue(&api.Event{CameraID: "c", Label: "person", ClassID: -3, Score: 0.5, Box: [4]float32{1, 2, 3, 4}, Model: "m", ModelVersion: "v"}))
	f.Add([]byte{1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r, r2 Record
		if decodeValue(position{device: "d"}, b, &r) == nil {
			if err := decodeValue(position{device: "d"}, encodeValue(&r.Event), &r2); err != nil || fmt.Sprint(r2) != fmt.Sprint(r) {
				t.Fatalf("value %x: %+v does not round-trip: %+v, %v", b, r, r2, err)
			}
		}
	})
}

func TestValueRoundTrip(t *testing.T) {
	e := api.Event{Seq: 7, CameraID: "dock-2", Time: 1234567, Label: "forklift", ClassID: 12, Score: 0.875, Box: [4]float32{-1, 2.5, 300, 4e3}, Model: "yolov8n", ModelVersion: "2026.1"}
	var r Record
	if err := decodeValue(position{time: 1234567, device: "d", seq: 7}, encodeValue(&e), &r); err != nil {
		t.Fatal(err)
	}
	if r.Event != e || r.Device != "d" {
		t.Fatalf("round trip: %+v, want %+v", r.Event, e)
	}
}
