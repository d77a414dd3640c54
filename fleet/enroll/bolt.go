package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/internal/boltschema"
)

// Schema of the bbolt file, version 1:
//
//	meta     "version" -> "1"
//	devices  id -> JSON boltDevice (labels, times, hash of the current token)
//	tokens   sha256(token) -> JSON boltToken (device, expiry, used)
//
// A device has at most one token: Add deletes the previous one. A used
// token stays, so that reusing it says "used" rather than "unknown".
const schemaVersion = "1"

var (
	bucketMeta    = []byte("meta")
	bucketDevices = []byte("devices")
	bucketTokens  = []byte("tokens")
)

type boltDevice struct {
	Labels   map[string]string `json:"labels,omitempty"`
	Added    time.Time         `json:"added"`
	Enrolled time.Time         `json:"enrolled,omitzero"`
	Revoked  time.Time         `json:"revoked,omitzero"`
	Token    []byte            `json:"token,omitempty"`
}

type boltToken struct {
	Device  string    `json:"device"`
	Expires time.Time `json:"expires"`
	Used    bool      `json:"used,omitempty"`
}

// Bolt is a Store in a bbolt file. It is safe for concurrent use.
type Bolt struct {
	opts Options
	db   *bolt.DB

	mu     sync.RWMutex // write-held by Close, read-held by every call
	closed bool
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating if needed) the store in the bbolt file at path.
// A file with another schema version is refused.
func OpenBolt(path string, o Options) (*Bolt, error) {
	db, err := boltschema.Open(path, bucketMeta, schemaVersion, bucketDevices, bucketTokens)
	if err != nil {
		return nil, fmt.Errorf("enroll: open %s: %w", path, err)
	}
	return &Bolt{opts: o.withDefaults(), db: db}, nil
}

// update runs fn in a write transaction unless the store is closed.
func (b *Bolt) update(fn func(tx *bolt.Tx) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return b.db.Update(fn)
}

func (b *Bolt) view(fn func(tx *bolt.Tx) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return b.db.View(fn)
}

func getJSON(bk *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := bk.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("enroll: corrupt record %q: %w", key, err)
	}
	return true, nil
}

func putJSON(bk *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return bk.Put(key, raw)
}

// Add implements Store.
func (b *Bolt) Add(_ context.Context, id string, labels map[string]string) (string, error) {
	if err := checkAdd(id, labels); err != nil {
		return "", err
	}
	tok, h := newToken()
	err := b.update(func(tx *bolt.Tx) error {
		devs, toks := tx.Bucket(bucketDevices), tx.Bucket(bucketTokens)
		var d boltDevice
		if _, err := getJSON(devs, []byte(id), &d); err != nil {
			return err
		}
		if !d.Revoked.IsZero() {
			return fmt.Errorf("%w: %s", ErrRevoked, id)
		}
		if d.Token != nil {
			if err := toks.Delete(d.Token); err != nil {
				return err
			}
		}
		now := b.opts.Now()
		d.Labels, d.Added, d.Token = maps.Clone(labels), now, h[:]
		if err := putJSON(toks, h[:], boltToken{Device: id, Expires: now.Add(b.opts.TTL)}); err != nil {
			return err
		}
		return putJSON(devs, []byte(id), d)
	})
	if err != nil {
		return "", wrap("add", err)
	}
	return tok, nil
}

// wrap prefixes errors that are not already the package's own.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, e := range []error{ErrClosed, ErrRevoked, ErrUnknownToken, ErrTokenExpired, ErrTokenUsed, ErrNotFound} {
		if errors.Is(err, e) {
			return err
		}
	}
	return fmt.Errorf("enroll: %s: %w", op, err)
}

// Redeem implements Store.
func (b *Bolt) Redeem(_ context.Context, token string, check func(Device) error) (Device, error) {
	h := hashToken(token)
	var out Device
	var checkErr error
	err := b.update(func(tx *bolt.Tx) error {
		devs, toks := tx.Bucket(bucketDevices), tx.Bucket(bucketTokens)
		var t boltToken
		if ok, err := getJSON(toks, h[:], &t); err != nil || !ok {
			return cmpErr(err, ErrUnknownToken)
		}
		var d boltDevice
		if ok, err := getJSON(devs, []byte(t.Device), &d); err != nil || !ok {
			return cmpErr(err, ErrUnknownToken)
		}
		now := b.opts.Now()
		switch {
		case t.Used:
			return fmt.Errorf("%w (device %s)", ErrTokenUsed, t.Device)
		case !now.Before(t.Expires):
			return fmt.Errorf("%w (device %s, at %s)", ErrTokenExpired, t.Device, t.Expires.UTC().Format(time.RFC3339))
		case !d.Revoked.IsZero():
			return fmt.Errorf("%w: %s", ErrRevoked, t.Device)
		}
		out = Device{ID: t.Device, Labels: d.Labels, Added: d.Added, Enrolled: d.Enrolled}
		if check != nil {
			if checkErr = check(cloneDevice(out)); checkErr != nil {
				return checkErr
			}
		}
		t.Used, d.Enrolled, out.Enrolled = true, now, now
		if err := putJSON(toks, h[:], t); err != nil {
			return err
		}
		return putJSON(devs, []byte(t.Device), d)
	})
	if checkErr != nil {
		return Device{}, checkErr
	}
	if err != nil {
		return Device{}, wrap("redeem", err)
	}
	return out, nil
}

// cmpErr returns err if set, else missing.
func cmpErr(err, missing error) error {
	if err != nil {
		return err
	}
	return missing
}

// Revoke implements Store.
func (b *Bolt) Revoke(_ context.Context, id string) error {
	err := b.update(func(tx *bolt.Tx) error {
		devs := tx.Bucket(bucketDevices)
		var d boltDevice
		if _, err := getJSON(devs, []byte(id), &d); err != nil {
			return err
		}
		if !d.Revoked.IsZero() {
			return nil
		}
		d.Revoked = b.opts.Now()
		return putJSON(devs, []byte(id), d)
	})
	return wrap("revoke", err)
}

// IsRevoked implements Store.
func (b *Bolt) IsRevoked(ctx context.Context, id string) (bool, error) {
	d, err := b.Device(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil && !d.Revoked.IsZero(), err
}

// Device implements Store.
func (b *Bolt) Device(_ context.Context, id string) (Device, error) {
	var d boltDevice
	err := b.view(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketDevices), []byte(id), &d)
		if err == nil && !ok {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return err
	})
	if err != nil {
		return Device{}, wrap("device", err)
	}
	return Device{ID: id, Labels: d.Labels, Added: d.Added, Enrolled: d.Enrolled, Revoked: d.Revoked}, nil
}

// Close implements Store.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("enroll: close: %w", err)
	}
	return nil
}
