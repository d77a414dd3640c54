package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"edgefleet/internal/boltschema"
)

// Schema of the bbolt file, version 1:
//
//	meta     "version" -> "1"
//	entries  big-endian uint64 ID (the bucket's sequence) -> JSON Entry
const schemaVersion = "1"

var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
)

// Bolt is a Log in a bbolt file; Record returns once the entry is on disk.
// It is safe for concurrent use.
type Bolt struct {
	opts Options
	db   *bolt.DB

	mu     sync.RWMutex // write-held by Close, read-held by every call
	closed bool
}

var _ Log = (*Bolt)(nil)

// OpenBolt opens (creating if needed) the log in the bbolt file at path.
// A file with another schema version is refused.
func OpenBolt(path string, o Options) (*Bolt, error) {
	db, err := boltschema.Open(path, bucketMeta, schemaVersion, bucketEntries)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	return &Bolt{opts: o.withDefaults(), db: db}, nil
}

func (b *Bolt) run(write bool, fn func(tx *bolt.Tx) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	if write {
		return b.db.Update(fn)
	}
	return b.db.View(fn)
}

func key(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// Record implements Log.
func (b *Bolt) Record(_ context.Context, e Entry) (Entry, error) {
	e, err := prepare(e, b.opts.Now)
	if err != nil {
		return e, err
	}
	err = b.run(true, func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketEntries)
		id, err := bk.NextSequence()
		if err != nil {
			return err
		}
		e.ID = id
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return bk.Put(key(id), raw)
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("audit: record: %w", err)
	}
	return e, err
}

// List implements Log.
func (b *Bolt) List(_ context.Context, q Query) ([]Entry, error) {
	n, err := q.limit()
	if err != nil {
		return nil, err
	}
	out := []Entry{}
	err = b.run(false, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEntries).Cursor()
		k, v := c.Last()
		if q.Before > 0 {
			if sk, _ := c.Seek(key(q.Before)); sk != nil {
				k, v = c.Prev() // the newest below Before
			} else {
				k, v = c.Last() // Seek moved the cursor past the end
			}
		}
		for ; k != nil && len(out) < n; k, v = c.Prev() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("corrupt entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, err
}

// Close closes the file; later calls return ErrClosed. It is safe to call twice.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.db.Close()
}
