package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/internal/boltschema"
)

// Schema of the bbolt file, version 1:
//
//	meta    "version" -> "1"
//	tokens  sha256(token) -> JSON boltToken (name, role, created, last used)
//	names   name -> sha256(token)
const schemaVersion = "1"

var (
	bucketMeta   = []byte("meta")
	bucketTokens = []byte("tokens")
	bucketNames  = []byte("names")
)

type boltToken struct {
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
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
	db, err := boltschema.Open(path, bucketMeta, schemaVersion, bucketTokens, bucketNames)
	if err != nil {
		return nil, fmt.Errorf("operator: open %s: %w", path, err)
	}
	return &Bolt{opts: o.withDefaults(), db: db}, nil
}

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

func getToken(bk *bolt.Bucket, h []byte) (boltToken, bool, error) {
	var t boltToken
	raw := bk.Get(h)
	if raw == nil {
		return t, false, nil
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return t, false, fmt.Errorf("operator: corrupt token record: %w", err)
	}
	return t, true, nil
}

func putToken(bk *bolt.Bucket, h []byte, t boltToken) error {
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return bk.Put(h, raw)
}

// Create implements Store.
func (b *Bolt) Create(_ context.Context, name string, role Role) (string, Token, error) {
	if err := checkCreate(name, role); err != nil {
		return "", Token{}, err
	}
	tok, h := newToken()
	t := boltToken{Name: name, Role: role, Created: b.opts.Now().UTC()}
	err := b.update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		if names.Get([]byte(name)) != nil {
			return fmt.Errorf("%w: %s", ErrExists, name)
		}
		if err := names.Put([]byte(name), h[:]); err != nil {
			return err
		}
		return putToken(tx.Bucket(bucketTokens), h[:], t)
	})
	if err != nil {
		return "", Token{}, wrap("create", err)
	}
	return tok, Token{Name: name, Role: role, Created: t.Created}, nil
}

// Authenticate implements Store. It writes the token's LastUsed when
// that is a minute old or more.
func (b *Bolt) Authenticate(_ context.Context, tok string) (Identity, error) {
	if !plausible(tok) {
		if err := b.view(func(*bolt.Tx) error { return nil }); err != nil {
			return Identity{}, err
		}
		return Identity{}, ErrUnknownToken
	}
	h := hashToken(tok)
	var t boltToken
	err := b.view(func(tx *bolt.Tx) error {
		var ok bool
		var err error
		if t, ok, err = getToken(tx.Bucket(bucketTokens), h[:]); err == nil && !ok {
			err = ErrUnknownToken
		}
		return err
	})
	if err != nil {
		return Identity{}, wrap("authenticate", err)
	}
	if now := b.opts.Now(); now.Sub(t.LastUsed) >= usedEvery {
		err = b.update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketTokens)
			cur, ok, err := getToken(bk, h[:])
			if err != nil || !ok {
				return err // revoked meanwhile: this request was already in
			}
			cur.LastUsed = now.UTC().Truncate(usedEvery)
			return putToken(bk, h[:], cur)
		})
		if err != nil {
			return Identity{}, wrap("authenticate", err)
		}
	}
	return Identity{Name: t.Name, Role: t.Role}, nil
}

// List implements Store.
func (b *Bolt) List(context.Context) ([]Token, error) {
	var out []Token
	err := b.view(func(tx *bolt.Tx) error {
		toks := tx.Bucket(bucketTokens)
		return tx.Bucket(bucketNames).ForEach(func(_, h []byte) error {
			t, ok, err := getToken(toks, h)
			if err != nil || !ok {
				return err
			}
			out = append(out, Token{Name: t.Name, Role: t.Role, Created: t.Created, LastUsed: t.LastUsed})
			return nil
		})
	})
	if err != nil {
		return nil, wrap("list", err)
	}
	return out, nil
}

// Revoke implements Store.
func (b *Bolt) Revoke(_ context.Context, name string) error {
	err := b.update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		h := names.Get([]byte(name))
		if h == nil {
			return fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		if err := tx.Bucket(bucketTokens).Delete(h); err != nil {
			return err
		}
		return names.Delete([]byte(name))
	})
	return wrap("revoke", err)
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
