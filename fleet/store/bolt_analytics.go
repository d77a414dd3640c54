package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

// Analytics events in the Bolt store (schema at schemaVersion in bolt.go).

var partByte = map[string]byte{PartCrop: 'c', PartThumb: 't'}

func seqIndexKey(device string, seq uint64) []byte {
	k := make([]byte, 0, len(device)+9)
	k = append(k, device...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func snapKeyOf(evKey []byte, part string) []byte {
	return append(bytes.Clone(evKey), partByte[part])
}

// putAnalytics stores one new analytics event, its index entry and its
// snapshot parts, in the commit's transaction.
func putAnalytics(tx *bolt.Tx, device string, e *api.Event, key, val []byte) error {
	if err := tx.Bucket(bucketEvA).Put(key, val); err != nil {
		return err
	}
	if err := tx.Bucket(bucketEvSeq).Put(seqIndexKey(device, e.Seq), key[:8]); err != nil {
		return err
	}
	_, parts := splitEvent(device, e)
	if len(parts) == 0 {
		return nil
	}
	snaps, meta := tx.Bucket(bucketSnaps), tx.Bucket(bucketMeta)
	var n uint64
	for _, p := range parts {
		if err := snaps.Put(snapKeyOf(key, p.part), p.jpeg); err != nil {
			return err
		}
		n += uint64(len(p.jpeg))
	}
	return putUint(meta, keySnapBytes, getUint(meta, keySnapBytes)+n)
}

// QueryEvents implements Store; see there.
func (s *Bolt) QueryEvents(ctx context.Context, q EventQuery) (EventPage, error) {
	cur, err := cursorPos(q.Cursor)
	if err != nil {
		return EventPage{}, err
	}
	page := EventPage{Events: []EventRecord{}}
	limit := q.limit()
	err = s.view(func(tx *bolt.Tx) error {
		snaps := tx.Bucket(bucketSnaps)
		return walkNewest(ctx, tx.Bucket(bucketEvA), cur, q.From, q.To, q.Device, func(k, v []byte) (bool, error) {
			r, err := decodeEvent(v)
			if err != nil {
				return false, fmt.Errorf("key %x: %w", k, err)
			}
			if !q.match(&r) {
				return false, nil
			}
			r.Crop = snaps.Get(snapKeyOf(k, PartCrop)) != nil
			r.Thumb = snaps.Get(snapKeyOf(k, PartThumb)) != nil
			page.Events = append(page.Events, r)
			if len(page.Events) >= limit {
				page.Next = encodeCursor(r.pos())
				return true, nil
			}
			return false, nil
		})
	})
	if err != nil {
		return EventPage{}, fmt.Errorf("store: query events: %w", err)
	}
	return page, nil
}

// CountLines implements Store; see there.
func (s *Bolt) CountLines(ctx context.Context, q CountQuery, width time.Duration) ([]LineCount, error) {
	from, to, w, err := lineRange(q, width)
	if err != nil {
		return nil, err
	}
	lc := &lineCounter{from: from, w: w, counts: map[LineCount]int{}}
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvA).Cursor()
		n := 0
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, timeKey(q.From.UnixMicro()))); k != nil; k, v = c.Next() {
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if binary.BigEndian.Uint64(k[:8]) >= timeKey(to) {
				break
			}
			if q.Device != "" && !keyHasDevice(k, q.Device) {
				continue
			}
			r, err := decodeEvent(v)
			if err != nil {
				return fmt.Errorf("key %x: %w", k, err)
			}
			if q.match(&r, q.From.UnixMicro(), to) {
				lc.add(&r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: count lines: %w", err)
	}
	return lc.rows(), nil
}

// EventSnapshot implements Store; see there.
func (s *Bolt) EventSnapshot(ctx context.Context, device string, seq uint64, part string) ([]byte, error) {
	if err := checkPart(part); err != nil {
		return nil, err
	}
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		t := tx.Bucket(bucketEvSeq).Get(seqIndexKey(device, seq))
		if len(t) != 8 {
			return nil
		}
		key := eventKey(position{time: binary.BigEndian.Uint64(t), device: device, seq: seq})
		if v := tx.Bucket(bucketSnaps).Get(snapKeyOf(key, part)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: event snapshot: %w", err)
	}
	if out == nil {
		return nil, fmt.Errorf("%w: snapshot %s of %s/%d", ErrNotFound, part, device, seq)
	}
	return out, nil
}

// retainEvents deletes analytics events older than MaxAge (with their
// index entries and snapshots) and snapshots beyond the snapshot bounds,
// oldest first, in chunks.
func (s *Bolt) retainEvents(ctx context.Context, now time.Time) error {
	rt := s.opt.Retention
	evCut, snapCut := uint64(0), uint64(0)
	if rt.MaxAge > 0 {
		evCut = timeKey(now.Add(-rt.MaxAge).UnixMicro())
	}
	if rt.SnapshotMaxAge > 0 {
		snapCut = timeKey(now.Add(-rt.SnapshotMaxAge).UnixMicro())
	}
	snapCut = max(snapCut, evCut)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := 0
		err := s.update(func(tx *bolt.Tx) error {
			n = 0
			meta := tx.Bucket(bucketMeta)
			size := getUint(meta, keySnapBytes)
			sc := tx.Bucket(bucketSnaps).Cursor()
			for k, v := sc.First(); k != nil && n < retainChunk; k, v = sc.First() {
				over := rt.SnapshotMaxBytes > 0 && size > uint64(rt.SnapshotMaxBytes)
				if binary.BigEndian.Uint64(k[:8]) >= snapCut && !over {
					break
				}
				size -= min(size, uint64(len(v)))
				if err := sc.Delete(); err != nil {
					return err
				}
				n++
			}
			ec := tx.Bucket(bucketEvA).Cursor()
			idx := tx.Bucket(bucketEvSeq)
			for k, _ := ec.First(); k != nil && n < retainChunk && binary.BigEndian.Uint64(k[:8]) < evCut; k, _ = ec.First() {
				if p, ok := parseEventKey(k); ok {
					if err := idx.Delete(seqIndexKey(p.device, p.seq)); err != nil {
						return err
					}
				}
				if err := ec.Delete(); err != nil {
					return err
				}
				n++
			}
			return putUint(meta, keySnapBytes, size)
		})
		if err != nil || n < retainChunk {
			return err
		}
	}
}
