package artifact

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/internal/boltschema"
	"edgefleet/models/manifest"
)

// BoltRing is the Ring of one fleetd, in a bbolt file (data_dir/ota/keys.db,
// mode 0600: it holds the signing key's private half in clear).
//
// bbolt schema (version 1):
//
//	meta/version     -> "1"
//	meta/signing     -> id of the signing key
//	keys/<id>        -> JSON ringKey (private_pem only on the signing key)
type BoltRing struct {
	db *bolt.DB
}

var _ Ring = (*BoltRing)(nil)

const ringSchema = "1"

var (
	ringMeta    = []byte("meta")
	ringKeys    = []byte("keys")
	ringSigning = []byte("signing")
)

// ringKey is a key as BoltRing stores it.
type ringKey struct {
	PublicPEM  string    `json:"public_pem"`
	PrivatePEM string    `json:"private_pem,omitempty"`
	Created    time.Time `json:"created"`
	Retired    time.Time `json:"retired,omitzero"`
}

// OpenBoltRing opens (creating) the key ring file at path.
func OpenBoltRing(path string) (*BoltRing, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("artifact: key ring: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := boltschema.Check(tx, ringMeta, []byte("version"), ringSchema); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(ringKeys)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("artifact: key ring: %s: %w", path, err)
	}
	return &BoltRing{db: db}, nil
}

// Close implements Ring; it is safe to call twice.
func (b *BoltRing) Close() error { return b.db.Close() }

func putKey(tx *bolt.Tx, priv ed25519.PrivateKey, now time.Time) (Key, error) {
	pub, id := publicOf(priv)
	pubPEM, err := manifest.EncodePublicKey(pub)
	if err != nil {
		return Key{}, err
	}
	privPEM, err := EncodePrivateKey(priv)
	if err != nil {
		return Key{}, err
	}
	v, _ := json.Marshal(ringKey{PublicPEM: string(pubPEM), PrivatePEM: string(privPEM), Created: now})
	if err := tx.Bucket(ringKeys).Put([]byte(id), v); err != nil {
		return Key{}, err
	}
	if err := tx.Bucket(ringMeta).Put(ringSigning, []byte(id)); err != nil {
		return Key{}, err
	}
	return Key{ID: id, Public: pub, Signing: true, Source: SourceRing, Created: now}, nil
}

func decodeRingKey(id, signing string, v []byte) (Key, ringKey, error) {
	var rk ringKey
	if err := json.Unmarshal(v, &rk); err != nil {
		return Key{}, rk, fmt.Errorf("key %s: %w", id, err)
	}
	pub, err := manifest.ParsePublicKey([]byte(rk.PublicPEM))
	if err != nil {
		return Key{}, rk, fmt.Errorf("key %s: %w", id, err)
	}
	return Key{ID: id, Public: pub, Signing: id == signing, Source: SourceRing, Created: rk.Created, Retired: rk.Retired}, rk, nil
}

// Init implements Ring.
func (b *BoltRing) Init(ctx context.Context, seed ed25519.PrivateKey) (Key, bool, error) {
	var k Key
	var created bool
	err := b.db.Update(func(tx *bolt.Tx) error {
		signing := tx.Bucket(ringMeta).Get(ringSigning)
		if signing == nil {
			priv := seed
			if priv == nil {
				var err error
				if priv, err = newKey(); err != nil {
					return err
				}
			}
			var err error
			k, err = putKey(tx, priv, ringNow())
			created = true
			return err
		}
		var err error
		if k, _, err = decodeRingKey(string(signing), string(signing), tx.Bucket(ringKeys).Get(signing)); err != nil {
			return err
		}
		if seed != nil {
			if _, id := publicOf(seed); tx.Bucket(ringKeys).Get([]byte(id)) == nil {
				return fmt.Errorf("%w: %s (the ring signs with %s)", ErrForeignKey, id, k.ID)
			}
		}
		return nil
	})
	if err != nil {
		return Key{}, false, fmt.Errorf("artifact: key ring: init: %w", err)
	}
	return k, created, nil
}

// Signer implements Ring.
func (b *BoltRing) Signer(ctx context.Context) (ed25519.PrivateKey, string, error) {
	var priv ed25519.PrivateKey
	var id string
	err := b.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(ringMeta).Get(ringSigning))
		if id == "" {
			return fmt.Errorf("%w: the ring is empty", ErrKeyNotFound)
		}
		_, rk, err := decodeRingKey(id, id, tx.Bucket(ringKeys).Get([]byte(id)))
		if err != nil {
			return err
		}
		priv, err = manifest.ParsePrivateKey([]byte(rk.PrivatePEM))
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("artifact: key ring: signer: %w", err)
	}
	return priv, id, nil
}

// Keys implements Ring.
func (b *BoltRing) Keys(ctx context.Context) ([]Key, error) {
	var ks []Key
	err := b.db.View(func(tx *bolt.Tx) error {
		signing := string(tx.Bucket(ringMeta).Get(ringSigning))
		return tx.Bucket(ringKeys).ForEach(func(id, v []byte) error {
			k, _, err := decodeRingKey(string(id), signing, v)
			ks = append(ks, k)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("artifact: key ring: %w", err)
	}
	sortKeys(ks)
	return ks, nil
}

// Rotate implements Ring.
func (b *BoltRing) Rotate(ctx context.Context) (Key, Key, error) {
	priv, err := newKey()
	if err != nil {
		return Key{}, Key{}, err
	}
	var signing, retired Key
	err = b.db.Update(func(tx *bolt.Tx) error {
		old := tx.Bucket(ringMeta).Get(ringSigning)
		if old == nil {
			return fmt.Errorf("%w: the ring is empty", ErrKeyNotFound)
		}
		oldID := string(old)
		k, rk, err := decodeRingKey(oldID, oldID, tx.Bucket(ringKeys).Get(old))
		if err != nil {
			return err
		}
		now := ringNow()
		rk.PrivatePEM, rk.Retired = "", now
		v, _ := json.Marshal(rk)
		if err := tx.Bucket(ringKeys).Put([]byte(oldID), v); err != nil {
			return err
		}
		k.Signing, k.Retired = false, now
		retired = k
		signing, err = putKey(tx, priv, now)
		return err
	})
	if err != nil {
		return Key{}, Key{}, fmt.Errorf("artifact: key ring: rotate: %w", err)
	}
	return signing, retired, nil
}

// ringNow is the time a ring records: to the microsecond, as PostgreSQL
// keeps it, so that a ring copied there (CopyRing) lists the same times.
func ringNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
