// Package boltschema checks the schema version stored in a bbolt file, so
// that a file written by a newer build is refused with a clear message
// instead of being misread.
package boltschema

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Check reads the version under key in bucket. A new file (no bucket or no
// key) gets want written and Check returns nil; a file with another version
// gives an error naming both. It must run inside an update transaction.
func Check(tx *bolt.Tx, bucket, key []byte, want string) error {
	b, err := tx.CreateBucketIfNotExists(bucket)
	if err != nil {
		return fmt.Errorf("boltschema: %w", err)
	}
	switch v := b.Get(key); {
	case v == nil:
		if err := b.Put(key, []byte(want)); err != nil {
			return fmt.Errorf("boltschema: %w", err)
		}
	case string(v) != want:
		return fmt.Errorf("schema version %q, this build reads %q", v, want)
	}
	return nil
}

// Open opens (creating if needed) the bbolt file at path (mode 0600,
// waiting at most 5 s for another process's lock), checks its schema
// version with Check under bucket meta, key "version", and creates the
// given buckets. On error nothing stays open.
func Open(path string, meta []byte, version string, buckets ...[]byte) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := Check(tx, meta, []byte("version"), version); err != nil {
			return err
		}
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("boltschema: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
