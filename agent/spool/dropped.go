package spool

import (
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

// MaxDroppedRanges is how many ranges of dropped seqs a spool remembers.
// Past it the oldest range leaves the list and its seqs are counted as
// unlisted (DroppedSeqs.Unlisted), so the list stays bounded and honest.
const MaxDroppedRanges = 1024

var (
	keyDroppedSeqs       = []byte("dropped_seqs")        // ranges, 16 bytes each: from, to
	keyDroppedUnlisted   = []byte("dropped_unlisted")    // seqs dropped but no longer listed
	keyDroppedUnlistedTo = []byte("dropped_unlisted_to") // the highest of them
)

// DroppedSeqs says which seqs a spool dropped (cap, age, full) over its
// file's life: Ranges lists them, merged and in order; Unlisted counts
// dropped seqs no longer listed (the list's oldest ranges past
// MaxDroppedRanges, or drops made before the file kept a list), all at or
// below UnlistedTo. len(Ranges' seqs) + Unlisted equals Stats.Dropped().
type DroppedSeqs struct {
	Ranges     []api.SeqRange
	Unlisted   uint64
	UnlistedTo uint64
}

// Count is the number of dropped seqs, listed or not.
func (d DroppedSeqs) Count() uint64 {
	n := d.Unlisted
	for _, r := range d.Ranges {
		n += r.To - r.From + 1
	}
	return n
}

// add notes seqs from..to as dropped. The caller owns d.Ranges (see
// outcome.dropSeqs): it is changed in place.
func (d *DroppedSeqs) add(from, to uint64) {
	if n := len(d.Ranges); n > 0 && d.Ranges[n-1].To+1 >= from {
		d.Ranges[n-1].To = max(d.Ranges[n-1].To, to)
	} else {
		d.Ranges = append(d.Ranges, api.SeqRange{From: from, To: to})
	}
	for len(d.Ranges) > MaxDroppedRanges {
		r := d.Ranges[0]
		d.Unlisted += r.To - r.From + 1
		d.UnlistedTo = max(d.UnlistedTo, r.To)
		d.Ranges = d.Ranges[1:]
	}
}

// dropSeqs notes seqs from..to as dropped in o, copying the ranges the
// first time so that a transaction that fails leaves the committer's state
// as it was.
func (o *outcome) dropSeqs(from, to uint64) {
	if !o.ownDropped {
		o.p.dropped.Ranges = slices.Clone(o.p.dropped.Ranges)
		o.ownDropped = true
	}
	o.p.dropped.add(from, to)
}

// readDropped reads the dropped-seq list of the meta bucket. A file without
// one (written before the list existed) has its counted drops, if any,
// reported as unlisted below next.
func readDropped(m *bolt.Bucket, counted, next uint64) (DroppedSeqs, error) {
	var d DroppedSeqs
	v := m.Get(keyDroppedSeqs)
	if m.Get(keyDroppedUnlisted) == nil {
		if counted > 0 {
			d.Unlisted, d.UnlistedTo = counted, next-1
		}
		return d, nil
	}
	if len(v)%16 != 0 || len(v)/16 > MaxDroppedRanges {
		return d, fmt.Errorf("%w: meta key %s has %d bytes, want a multiple of 16 up to %d", ErrSchema, keyDroppedSeqs, len(v), 16*MaxDroppedRanges)
	}
	d.Ranges = make([]api.SeqRange, 0, len(v)/16)
	for i := 0; i < len(v); i += 16 {
		r := api.SeqRange{From: binary.BigEndian.Uint64(v[i:]), To: binary.BigEndian.Uint64(v[i+8:])}
		if r.From == 0 || r.To < r.From || r.To >= next || (len(d.Ranges) > 0 && r.From <= d.Ranges[len(d.Ranges)-1].To) {
			return d, fmt.Errorf("%w: meta key %s has a bad range %d-%d", ErrSchema, keyDroppedSeqs, r.From, r.To)
		}
		d.Ranges = append(d.Ranges, r)
	}
	var err error
	if d.Unlisted, err = getU64(m, keyDroppedUnlisted); err != nil {
		return d, err
	}
	d.UnlistedTo, err = getU64(m, keyDroppedUnlistedTo)
	return d, err
}

// writeDropped writes the dropped-seq list into the meta bucket.
func writeDropped(m *bolt.Bucket, d DroppedSeqs) error {
	buf := make([]byte, 0, 16*len(d.Ranges))
	for _, r := range d.Ranges {
		buf = binary.BigEndian.AppendUint64(buf, r.From)
		buf = binary.BigEndian.AppendUint64(buf, r.To)
	}
	if err := m.Put(keyDroppedSeqs, buf); err != nil {
		return err
	}
	if err := putU64(m, keyDroppedUnlisted, d.Unlisted); err != nil {
		return err
	}
	return putU64(m, keyDroppedUnlistedTo, d.UnlistedTo)
}

// DroppedSeqs returns which seqs the spool dropped over its file's life.
func (s *Spool) DroppedSeqs() DroppedSeqs {
	s.stmu.Lock()
	defer s.stmu.Unlock()
	d := s.dropped
	d.Ranges = slices.Clone(d.Ranges)
	return d
}
