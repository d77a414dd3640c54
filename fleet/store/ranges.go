package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
)

// rangeSet is a sorted list of disjoint, non-adjacent inclusive seq ranges.
type rangeSet []seqRange

type seqRange struct{ from, to uint64 }

// has reports whether seq is in the set.
func (rs rangeSet) has(seq uint64) bool {
	_, found := slices.BinarySearchFunc(rs, seq, func(r seqRange, s uint64) int {
		switch {
		case r.to < s:
			return -1
		case r.from > s:
			return 1
		}
		return 0
	})
	return found
}

// add returns the set with seq added; appending the next seq is the fast path.
func (rs rangeSet) add(seq uint64) rangeSet {
	if n := len(rs); n > 0 && rs[n-1].to != ^uint64(0) && rs[n-1].to+1 == seq {
		rs[n-1].to = seq
		return rs
	}
	if rs.has(seq) {
		return rs
	}
	i, _ := slices.BinarySearchFunc(rs, seq, func(r seqRange, s uint64) int {
		if r.from < s {
			return -1
		}
		return 1
	})
	rs = slices.Insert(rs, i, seqRange{seq, seq})
	// Merge with the neighbours.
	if i+1 < len(rs) && rs[i].to+1 == rs[i+1].from {
		rs[i].to = rs[i+1].to
		rs = slices.Delete(rs, i+1, i+2)
	}
	if i > 0 && rs[i-1].to+1 == rs[i].from {
		rs[i-1].to = rs[i].to
		rs = slices.Delete(rs, i, i+1)
	}
	return rs
}

func (rs rangeSet) encode() []byte {
	b := make([]byte, 0, len(rs)*6)
	for _, r := range rs {
		b = binary.AppendUvarint(b, r.from)
		b = binary.AppendUvarint(b, r.to-r.from)
	}
	return b
}

var errBadRanges = errors.New("bad range encoding")

func decodeRanges(b []byte) (rangeSet, error) {
	var rs rangeSet
	for len(b) > 0 {
		from, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errBadRanges
		}
		b = b[n:]
		span, n := binary.Uvarint(b)
		if n <= 0 || from+span < from {
			return nil, errBadRanges
		}
		b = b[n:]
		if l := len(rs); l > 0 && rs[l-1].to >= from {
			return nil, errBadRanges
		}
		rs = append(rs, seqRange{from, from + span})
	}
	return rs, nil
}

// keyHasDevice reports whether an events key belongs to device.
func keyHasDevice(k []byte, device string) bool {
	return len(k) == 17+len(device) && k[len(k)-9] == 0 && bytes.Equal(k[8:8+len(device)], []byte(device))
}
