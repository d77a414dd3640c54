package link

import (
	"context"
	"testing"

	"edgefleet/fleet/api"
)

func seqs(evs []api.Event) []uint64 {
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func TestMemOutbox(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		acks  []api.SeqRange
		after uint64
		max   int
		want  []uint64
	}{
		{"from start", nil, 0, 3, []uint64{1, 2, 3}},
		{"after", nil, 7, 10, []uint64{8, 9, 10}},
		{"past end", nil, 10, 10, []uint64{}},
		{"max after", nil, ^uint64(0), 10, []uint64{}},
		{"acked prefix", []api.SeqRange{{From: 1, To: 4}}, 0, 3, []uint64{5, 6, 7}},
		{"acked hole", []api.SeqRange{{From: 2, To: 3}, {From: 6, To: 6}}, 0, 5, []uint64{1, 4, 5, 7, 8}},
		{"ack beyond", []api.SeqRange{{From: 9, To: 100}}, 5, 10, []uint64{6, 7, 8}},
		{"ack everything", []api.SeqRange{{From: 0, To: ^uint64(0)}}, 0, 10, []uint64{}},
		{"inverted ignored", []api.SeqRange{{From: 5, To: 1}}, 0, 2, []uint64{1, 2}},
		{"repeat ack", []api.SeqRange{{From: 1, To: 1}, {From: 1, To: 2}}, 0, 2, []uint64{3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemOutbox()
			for i := range 10 {
				if got := m.Add(api.Event{CameraID: "c"}); got != uint64(i+1) {
					t.Fatalf("Add = %d", got)
				}
			}
			if err := m.Ack(ctx, tt.acks...); err != nil {
				t.Fatal(err)
			}
			evs, err := m.Next(ctx, tt.after, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(evs); len(got) != len(tt.want) || (len(got) > 0 && !equal(got, tt.want)) {
				t.Fatalf("Next = %v, want %v", got, tt.want)
			}
		})
	}
	m := NewMemOutbox()
	m.Add(api.Event{})
	select {
	case <-m.Ready():
	default:
		t.Error("Ready did not fire after Add")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Next(cctx, 0, 1); err == nil {
		t.Error("Next with a cancelled context succeeded")
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
