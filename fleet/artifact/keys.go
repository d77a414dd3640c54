package artifact

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"edgefleet/models/manifest"
)

// Key ring errors, returned wrapped. Test with errors.Is.
var (
	// ErrKeyFixed means the ring's signing key is fixed (a key file named in
	// the config), so Rotate cannot replace it.
	ErrKeyFixed = errors.New("artifact: the signing key is fixed")
	// ErrKeyNotFound means no key of the ring has that id.
	ErrKeyNotFound = errors.New("artifact: no such key")
	// ErrForeignKey means Init was given a key that the ring, already
	// holding keys, does not know.
	ErrForeignKey = errors.New("artifact: key is not in the key ring")
)

// Key sources, for Key.Source.
const (
	// SourceRing is a key the ring made or took over (Init's seed).
	SourceRing = "ring"
	// SourceConfig is a key from a file named in fleetd's config.
	SourceConfig = "config"
)

// Key is one key of a Ring: public half and history only.
type Key struct {
	ID     string
	Public ed25519.PublicKey
	// Signing marks the key that signs new artifacts (one per ring).
	Signing bool
	Source  string
	// Created is when the ring made or took the key (zero for key files);
	// Retired when a rotation replaced it (zero while it signs).
	Created, Retired time.Time
}

// Ring holds fleetd's signing keys: the one that signs new manifests and
// the retired ones whose public halves agents may still pin. A retired
// key's private half is erased: it never signs again. Implementations
// (BoltRing for one fleetd, PostgresRing for replicas, FixedRing for a
// key file) are safe for concurrent use.
type Ring interface {
	// Init gives an empty ring its first signing key: seed when not nil
	// (an existing key that agents pin), else a new one; created reports
	// whether it did. On a ring with keys, a seed it does not hold is
	// ErrForeignKey.
	Init(ctx context.Context, seed ed25519.PrivateKey) (signing Key, created bool, err error)
	// Signer returns the private key that signs from now on, and its id.
	Signer(ctx context.Context) (ed25519.PrivateKey, string, error)
	// Keys lists every key: the signing one first, then the retired ones,
	// most recently retired first.
	Keys(ctx context.Context) ([]Key, error)
	// Rotate makes a new key the signing one and retires the previous.
	Rotate(ctx context.Context) (signing, retired Key, err error)
	Close() error
}

// RingSigner is Signer with the ring's signing key of the moment: each
// Put reads it, so a rotation (by any replica) applies to the next push.
func RingSigner(r Ring) Sealer {
	return func(ctx context.Context, blob io.ReaderAt, m *Meta) error {
		priv, id, err := r.Signer(ctx)
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		return Signer(priv, id)(ctx, blob, m)
	}
}

// sortKeys orders keys as Ring.Keys promises.
func sortKeys(ks []Key) {
	slices.SortStableFunc(ks, func(a, b Key) int {
		switch {
		case a.Signing != b.Signing:
			if a.Signing {
				return -1
			}
			return 1
		case !a.Retired.Equal(b.Retired):
			return b.Retired.Compare(a.Retired)
		}
		return b.Created.Compare(a.Created)
	})
}

// newKey generates an ed25519 key.
func newKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("artifact: generate key: %w", err)
	}
	return priv, nil
}

func publicOf(priv ed25519.PrivateKey) (ed25519.PublicKey, string) {
	pub := priv.Public().(ed25519.PublicKey)
	return pub, manifest.KeyID(pub)
}

// FixedRing is a Ring of one key that never changes: fleetd's
// ota.signing_key file. Rotate returns ErrKeyFixed with the reason given.
type FixedRing struct {
	priv ed25519.PrivateKey
	why  string
}

var (
	_ Ring = (*FixedRing)(nil)
	_ Ring = Pinned{}
)

// NewFixedRing returns a ring signing with priv; why says, in Rotate's
// error, where the key comes from and how to change it.
func NewFixedRing(priv ed25519.PrivateKey, why string) *FixedRing {
	return &FixedRing{priv: priv, why: why}
}

// Init implements Ring: the key is already there.
func (f *FixedRing) Init(ctx context.Context, seed ed25519.PrivateKey) (Key, bool, error) {
	ks, _ := f.Keys(ctx)
	if seed != nil && !seed.Equal(f.priv) {
		return Key{}, false, ErrForeignKey
	}
	return ks[0], false, nil
}

// Signer implements Ring.
func (f *FixedRing) Signer(context.Context) (ed25519.PrivateKey, string, error) {
	_, id := publicOf(f.priv)
	return f.priv, id, nil
}

// Keys implements Ring.
func (f *FixedRing) Keys(context.Context) ([]Key, error) {
	pub, id := publicOf(f.priv)
	return []Key{{ID: id, Public: pub, Signing: true, Source: SourceConfig}}, nil
}

// Rotate implements Ring: always ErrKeyFixed.
func (f *FixedRing) Rotate(context.Context) (Key, Key, error) {
	return Key{}, Key{}, fmt.Errorf("%w: %s", ErrKeyFixed, f.why)
}

// Close implements Ring.
func (f *FixedRing) Close() error { return nil }

// Pinned is a Ring with more public keys listed after the ring's own
// (fleetd's ota.public_keys): agents may pin them, nothing signs with them.
type Pinned struct {
	Ring
	Extra manifest.KeySet
}

// Keys implements Ring.
func (p Pinned) Keys(ctx context.Context) ([]Key, error) {
	ks, err := p.Ring.Keys(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range p.Extra.IDs() {
		if !slices.ContainsFunc(ks, func(k Key) bool { return k.ID == id }) {
			ks = append(ks, Key{ID: id, Public: p.Extra[id], Source: SourceConfig})
		}
	}
	return ks, nil
}

// KeySet returns the public keys of ks, as agents pin them.
func KeySet(ks []Key) manifest.KeySet {
	set := manifest.KeySet{}
	for _, k := range ks {
		set.Add(k.Public)
	}
	return set
}
