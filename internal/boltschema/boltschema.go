// Package boltschema checks the schema version stored in a bbolt file, so
// that a file written by a newer build is refused with a clear message
// instead of being misread.
package boltschema

import (
	"fmt"

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
