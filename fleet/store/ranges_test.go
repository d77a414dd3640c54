package store

import (
	"math/rand/v2"
	"testing"
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
