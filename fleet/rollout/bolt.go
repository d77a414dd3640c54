package rollout

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/internal/boltschema"
)

// Bolt is the bbolt Store.
//
// Schema (version 1):
//
//	meta/version      -> "1"
//	meta/epoch        -> 8 hex digits, set when the database is created
//	rollouts/<id>     -> JSON Rollout (with every job and transition)
//	shadow/<id>/<dev> -> JSON ShadowRecord (bucket added with shadow phases;
//	                     created when missing, so version 1 still)
//
// Rollout ids take n in r<n> from the rollouts bucket's sequence. Fields
// added since (transitions, the per-wave limits) are optional in the JSON,
// so files of earlier builds read as they are.
type Bolt struct {
	db    *bolt.DB
	epoch string
}

var (
	_ Store       = (*Bolt)(nil)
	_ AtomicSaver = (*Bolt)(nil)
)

var (
	bucketMeta     = []byte("meta")
	bucketRollouts = []byte("rollouts")
	bucketShadow   = []byte("shadow")
	keyVersion     = []byte("version")
	keyEpoch       = []byte("epoch")
)

const schemaVersion = "1"

// OpenBolt opens (creating if needed) the database at path.
func OpenBolt(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("rollout: open: %w", err)
	}
	s := &Bolt{db: db}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := boltschema.Check(tx, bucketMeta, keyVersion, schemaVersion); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketRollouts, bucketShadow} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		mb := tx.Bucket(bucketMeta)
		if ep := mb.Get(keyEpoch); ep != nil {
			s.epoch = string(ep)
			return nil
		}
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		s.epoch = hex.EncodeToString(b[:])
		return mb.Put(keyEpoch, []byte(s.epoch))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("rollout: open: %w", err)
	}
	return s, nil
}

// Epoch implements Store.
func (s *Bolt) Epoch() string { return s.epoch }

// Load implements Store.
func (s *Bolt) Load(_ context.Context) ([]*Rollout, error) {
	var out []*Rollout
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRollouts).ForEach(func(k, v []byte) error {
			r := &Rollout{}
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: load: %w", err)
	}
	return out, nil
}

// errFill carries fill's error out of the transaction unwrapped.
type errFill struct{ err error }

func (e errFill) Error() string { return e.err.Error() }

// Create implements Store.
func (s *Bolt) Create(_ context.Context, fill func(id string) (*Rollout, error)) (*Rollout, error) {
	var r *Rollout
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		id := "r" + strconv.FormatUint(seq, 10)
		if r, err = fill(id); err != nil {
			return errFill{err}
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), v)
	})
	var fe errFill
	if errors.As(err, &fe) {
		return nil, fe.err
	}
	if err != nil {
		return nil, fmt.Errorf("rollout: create: %w", err)
	}
	return r, nil
}

// Save implements Store.
func (s *Bolt) Save(_ context.Context, rs ...*Rollout) error {
	if len(rs) == 0 {
		return nil
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return putRollouts(tx, rs) }); err != nil {
		return fmt.Errorf("rollout: save: %w", err)
	}
	return nil
}

// SaveShadow implements Store.
func (s *Bolt) SaveShadow(_ context.Context, recs ...ShadowRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return putShadow(tx, recs) }); err != nil {
		return fmt.Errorf("rollout: save shadow reports: %w", err)
	}
	return nil
}

// SaveWithShadow implements AtomicSaver: SaveShadow and Save in one
// transaction.
func (s *Bolt) SaveWithShadow(_ context.Context, recs []ShadowRecord, rs ...*Rollout) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := putShadow(tx, recs); err != nil {
			return fmt.Errorf("shadow reports: %w", err)
		}
		return putRollouts(tx, rs)
	})
	if err != nil {
		return fmt.Errorf("rollout: save: %w", err)
	}
	return nil
}

func putRollouts(tx *bolt.Tx, rs []*Rollout) error {
	b := tx.Bucket(bucketRollouts)
	for _, r := range rs {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(r.ID), v); err != nil {
			return err
		}
	}
	return nil
}

func putShadow(tx *bolt.Tx, recs []ShadowRecord) error {
	b := tx.Bucket(bucketShadow)
	for _, rec := range recs {
		k := []byte(shadowKey(rec.RolloutID, rec.DeviceID))
		v, err := mergeShadow(b.Get(k), rec)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if err := b.Put(k, v); err != nil {
			return err
		}
	}
	return nil
}

// LoadShadow implements Store.
func (s *Bolt) LoadShadow(_ context.Context, rolloutID string) ([]ShadowRecord, error) {
	var out []ShadowRecord
	prefix := []byte(rolloutID + "/")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketShadow).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var rec ShadowRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: load shadow reports of %s: %w", rolloutID, err)
	}
	return out, nil
}

// Close implements Store.
func (s *Bolt) Close() error {
	// bbolt's Close is a no-op on a closed database.
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("rollout: close: %w", err)
	}
	return nil
}
