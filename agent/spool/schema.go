package spool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

// Schema of the spool file (bbolt), version 3:
//
//	meta/                        one bucket of fixed keys, all uint64 big endian
//	  version       schemaVersion; a newer one is refused, older ones upgraded
//	  next_seq      the seq the next event gets; only ever goes up
//	  count         events stored in events/
//	  bytes         their size: key + value + bbolt's 16-byte element header
//	  dropped_cap   events dropped, lifetime, to honour the byte budget
//	  dropped_age   events dropped, lifetime, for being older than MaxAge
//	  dropped_full  events dropped, lifetime, because the disk or file was full
//	  dropped_seqs  which seqs were dropped: up to MaxDroppedRanges ranges,
//	                16 bytes each (from, to), merged, in order (dropped.go)
//	  dropped_unlisted, dropped_unlisted_to  dropped seqs no longer listed
//	                and the highest of them; absent in a file written before
//	                the list existed, whose counted drops are then unlisted
//	events/
//	  <seq, 8 bytes big endian>  record (see record.go); keys only ever
//	                             appended at the end, deleted by Ack or drops
//
// Version 1 (the first layout) had meta/{version, next_seq} and events/
// values in the JSON wire form of api.Event; Open upgrades it in one
// transaction: records re-encoded with the capture time as spool time, and
// the counters computed.
//
// Version 2 is version 3 with only format 2 records (detections, no
// analytics part). Open upgrades it by setting the version: its records are
// read as they are and new ones are written in format 3 (record.go). The
// version goes up so that an older agent, which cannot read format 3
// records, refuses the file instead of calling its analytics events corrupt.
const schemaVersion = 3

var (
	bucketMeta   = []byte("meta")
	bucketEvents = []byte("events")

	keyVersion     = []byte("version")
	keyNextSeq     = []byte("next_seq")
	keyCount       = []byte("count")
	keyBytes       = []byte("bytes")
	keyDroppedCap  = []byte("dropped_cap")
	keyDroppedAge  = []byte("dropped_age")
	keyDroppedFull = []byte("dropped_full")
)

// ErrVersion is wrapped by Open's error for a file written by a newer schema
// than this build knows.
var ErrVersion = errors.New("spool: unsupported schema version")

// ErrSchema is wrapped by Open's error for a bbolt file that is not a spool
// or whose meta bucket is damaged.
var ErrSchema = errors.New("spool: not a spool file")

// persisted is the meta bucket's content.
type persisted struct {
	nextSeq                           uint64
	count, bytes                      uint64
	droppedCap, droppedAge, droppedFl uint64
	dropped                           DroppedSeqs // which seqs; written by writeDropped
}

func getU64(b *bolt.Bucket, k []byte) (uint64, error) {
	v := b.Get(k)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: meta key %s has %d bytes, want 8", ErrSchema, k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func putU64(b *bolt.Bucket, k []byte, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put(k, buf[:])
}

func readMeta(tx *bolt.Tx) (persisted, error) {
	var p persisted
	m := tx.Bucket(bucketMeta)
	if m == nil {
		return p, fmt.Errorf("%w: no meta bucket", ErrSchema)
	}
	for _, f := range []struct {
		k []byte
		v *uint64
	}{
		{keyNextSeq, &p.nextSeq}, {keyCount, &p.count}, {keyBytes, &p.bytes},
		{keyDroppedCap, &p.droppedCap}, {keyDroppedAge, &p.droppedAge}, {keyDroppedFull, &p.droppedFl},
	} {
		v, err := getU64(m, f.k)
		if err != nil {
			return p, err
		}
		*f.v = v
	}
	if p.nextSeq == 0 {
		return p, fmt.Errorf("%w: next_seq is 0", ErrSchema)
	}
	var err error
	p.dropped, err = readDropped(m, p.droppedCap+p.droppedAge+p.droppedFl, p.nextSeq)
	return p, err
}

func writeMeta(tx *bolt.Tx, p persisted) error {
	m := tx.Bucket(bucketMeta)
	for _, f := range []struct {
		k []byte
		v uint64
	}{
		{keyNextSeq, p.nextSeq}, {keyCount, p.count}, {keyBytes, p.bytes},
		{keyDroppedCap, p.droppedCap}, {keyDroppedAge, p.droppedAge}, {keyDroppedFull, p.droppedFl},
	} {
		if err := putU64(m, f.k, f.v); err != nil {
			return err
		}
	}
	return nil
}

// initSchema creates a fresh file's buckets, checks the version of an
// existing one, and upgrades older versions. It reports the version found
// (0 for a new file).
func initSchema(tx *bolt.Tx) (found uint64, err error) {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return 0, fmt.Errorf("%w: buckets present but no meta bucket", ErrSchema)
		}
		if m, err = tx.CreateBucket(bucketMeta); err != nil {
			return 0, err
		}
		if _, err = tx.CreateBucket(bucketEvents); err != nil {
			return 0, err
		}
		if err := putU64(m, keyVersion, schemaVersion); err != nil {
			return 0, err
		}
		if err := writeDropped(m, DroppedSeqs{}); err != nil {
			return 0, err
		}
		return 0, writeMeta(tx, persisted{nextSeq: 1})
	}
	v := m.Get(keyVersion)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: meta has no valid version key", ErrSchema)
	}
	found = binary.BigEndian.Uint64(v)
	if tx.Bucket(bucketEvents) == nil {
		return found, fmt.Errorf("%w: no events bucket", ErrSchema)
	}
	switch {
	case found == schemaVersion:
		_, err = readMeta(tx)
		return found, err
	case found > schemaVersion:
		return found, fmt.Errorf("%w: file has version %d, this agent knows up to %d; use a newer agent or move the file away", ErrVersion, found, schemaVersion)
	case found == 1:
		return found, upgradeV1(tx)
	case found == 2:
		if _, err := readMeta(tx); err != nil {
			return found, err
		}
		return found, putU64(m, keyVersion, schemaVersion)
	default:
		return found, fmt.Errorf("%w: version %d", ErrVersion, found)
	}
}

// upgradeV1 re-encodes JSON records (schema 1) as binary records (schema 2).
func upgradeV1(tx *bolt.Tx) error {
	m := tx.Bucket(bucketMeta)
	next, err := getU64(m, keyNextSeq)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketEvents)
	type kv struct{ k, v []byte }
	var recs []kv
	p := persisted{nextSeq: max(next, 1)}
	err = b.ForEach(func(k, v []byte) error {
		seq, ok := keySeq(k)
		if !ok {
			return fmt.Errorf("%w: events key of %d bytes", ErrSchema, len(k))
		}
		var e api.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return &CorruptError{Seq: seq, Reason: "schema 1 record: " + err.Error()}
		}
		val := sealRecord(k, appendBody(make([]byte, 0, bodySize(&e)), uint64(max(e.Time, 0)), &e))
		recs = append(recs, kv{append([]byte(nil), k...), val})
		p.count++
		p.bytes += uint64(len(k) + len(val) + elemOverhead)
		p.nextSeq = max(p.nextSeq, seq+1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("upgrade schema 1: %w", err)
	}
	for _, r := range recs {
		if err := b.Put(r.k, r.v); err != nil {
			return fmt.Errorf("upgrade schema 1: %w", err)
		}
	}
	if err := putU64(m, keyVersion, schemaVersion); err != nil {
		return err
	}
	return writeMeta(tx, p)
}
