package spool

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

func TestDroppedSeqsAdd(t *testing.T) {
	odd := func(from, n int) []api.SeqRange { // n single seqs 2i+1, from i=from
		var rs []api.SeqRange
		for i := from; i < from+n; i++ {
			rs = append(rs, api.SeqRange{From: uint64(2*i + 1), To: uint64(2*i + 1)})
		}
		return rs
	}
	tests := []struct {
		name string
		add  []api.SeqRange
		want DroppedSeqs
	}{
		{"adjacent merge", []api.SeqRange{{From: 1, To: 1}, {From: 2, To: 2}, {From: 3, To: 5}},
			DroppedSeqs{Ranges: []api.SeqRange{{From: 1, To: 5}}}},
		{"gap kept", []api.SeqRange{{From: 1, To: 2}, {From: 4, To: 4}},
			DroppedSeqs{Ranges: []api.SeqRange{{From: 1, To: 2}, {From: 4, To: 4}}}},
		{"at the cap", odd(0, MaxDroppedRanges), DroppedSeqs{Ranges: odd(0, MaxDroppedRanges)}},
		{"past the cap the oldest are counted unlisted", odd(0, MaxDroppedRanges+3),
			DroppedSeqs{Ranges: odd(3, MaxDroppedRanges), Unlisted: 3, UnlistedTo: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d DroppedSeqs
			for _, r := range tt.add {
				d.add(r.From, r.To)
			}
			if !reflect.DeepEqual(d, tt.want) {
				t.Fatalf("got %d ranges (first %v), %d unlisted to %d; want %d (first %v), %d to %d",
					len(d.Ranges), d.Ranges[0], d.Unlisted, d.UnlistedTo, len(tt.want.Ranges), tt.want.Ranges[0], tt.want.Unlisted, tt.want.UnlistedTo)
			}
			var n uint64
			for _, r := range tt.add {
				n += r.To - r.From + 1
			}
			if d.Count() != n {
				t.Fatalf("Count %d, want %d", d.Count(), n)
			}
		})
	}
}

// storedSeqs reads every seq the spool holds.
func storedSeqs(t *testing.T, s *Spool) map[uint64]bool {
	t.Helper()
	stored := map[uint64]bool{}
	var last uint64
	for {
		es, err := s.Next(context.Background(), last, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return stored
		}
		for _, e := range es {
			stored[e.Seq] = true
			last = e.Seq
		}
	}
}

// checkDroppedExact checks that the listed drops are exactly the seqs
// neither acked nor stored, and that they add up to the counters.
func checkDroppedExact(t *testing.T, s *Spool, acked map[uint64]bool) {
	t.Helper()
	st, d := s.Stats(), s.DroppedSeqs()
	if d.Count() != st.Dropped() || d.Unlisted != 0 {
		t.Fatalf("dropped list counts %d (%d unlisted), Stats.Dropped %d", d.Count(), d.Unlisted, st.Dropped())
	}
	listed := map[uint64]bool{}
	for _, r := range d.Ranges {
		for seq := r.From; seq <= r.To; seq++ {
			listed[seq] = true
		}
	}
	stored := storedSeqs(t, s)
	for seq := uint64(1); seq < st.NextSeq; seq++ {
		gone := !acked[seq] && !stored[seq]
		if gone != listed[seq] {
			t.Fatalf("seq %d: acked %v, stored %v, listed as dropped %v", seq, acked[seq], stored[seq], listed[seq])
		}
	}
}

// TestDroppedSeqsExact drops by the byte cap (in between acks, so the drops
// are many ranges, and one Append bigger than the budget) and checks the
// list names exactly the dropped seqs, before and after a reopen.
func TestDroppedSeqsExact(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path, Options{MaxBytes: MinMaxBytes})
	acked := map[uint64]bool{}
	for i := 0; i < 20; i++ {
		first, last, err := s.Append(ctx, evs(i*200, 200)...)
		if err != nil {
			t.Fatal(err)
		}
		for seq := first; seq <= last; seq += 7 {
			if err := s.Ack(ctx, api.SeqRange{From: seq, To: seq}); err != nil {
				t.Fatal(err)
			}
			acked[seq] = true
		}
	}
	if _, _, err := s.Append(ctx, evs(0, 20_000)...); err != nil {
		t.Fatal(err)
	}
	if s.Stats().DroppedCap == 0 || len(s.DroppedSeqs().Ranges) < 2 {
		t.Fatalf("no cap drops in ranges: %+v, %d ranges", s.Stats(), len(s.DroppedSeqs().Ranges))
	}
	checkDroppedExact(t, s, acked)
	want := s.DroppedSeqs()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, Options{MaxBytes: MinMaxBytes})
	defer s.Close()
	if got := s.DroppedSeqs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %d ranges, %d unlisted; before: %d, %d", len(got.Ranges), got.Unlisted, len(want.Ranges), want.Unlisted)
	}
	checkDroppedExact(t, s, acked)
}

// TestDroppedSeqsLegacyFile: a file written before the list existed has
// its counted drops reported as unlisted, below its next seq.
func TestDroppedSeqsLegacyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path, Options{MaxBytes: MinMaxBytes})
	if _, _, err := s.Append(context.Background(), evs(0, 20_000)...); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		for _, k := range [][]byte{keyDroppedSeqs, keyDroppedUnlisted, keyDroppedUnlistedTo} {
			if err := m.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	s = open(t, path, Options{MaxBytes: MinMaxBytes})
	defer s.Close()
	want := DroppedSeqs{Unlisted: st.Dropped(), UnlistedTo: st.NextSeq - 1}
	if got := s.DroppedSeqs(); st.Dropped() == 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("legacy file: %+v, want %+v", got, want)
	}
}
