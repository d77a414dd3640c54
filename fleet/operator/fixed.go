package operator

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Fixed is a token set in fleetd's configuration rather than made by a Store.
type Fixed struct {
	Name  string
	Role  Role
	Token string
}

// MinFixedLen is the shortest fixed token accepted.
const MinFixedLen = 16

// Layered is a Store whose fixed tokens come first: they authenticate
// without the store, are listed with Fixed set, and cannot be created or
// revoked through it. It is safe for concurrent use.
type Layered struct {
	store Store
	fixed []fixedEntry
	now   func() time.Time

	mu   sync.Mutex
	used map[string]time.Time // LastUsed of the fixed tokens
}

type fixedEntry struct {
	Fixed
	sum [sha256.Size]byte
}

var _ Store = (*Layered)(nil)

// WithFixed puts fixed tokens in front of store. Names must be valid and
// distinct, roles valid and tokens at least MinFixedLen characters.
func WithFixed(store Store, o Options, fixed ...Fixed) (*Layered, error) {
	l := &Layered{store: store, now: o.withDefaults().Now, used: map[string]time.Time{}}
	var errs []error
	for i, f := range fixed {
		if err := checkCreate(f.Name, f.Role); err != nil {
			errs = append(errs, fmt.Errorf("fixed token %d: %w", i, err))
		}
		if len(f.Token) < MinFixedLen {
			errs = append(errs, fmt.Errorf("operator: fixed token %d (%s): shorter than %d characters", i, f.Name, MinFixedLen))
		}
		if slices.ContainsFunc(l.fixed, func(e fixedEntry) bool { return e.Name == f.Name }) {
			errs = append(errs, fmt.Errorf("operator: fixed token %d: name %q repeated", i, f.Name))
		}
		l.fixed = append(l.fixed, fixedEntry{f, sha256.Sum256([]byte(f.Token))})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Layered) isFixed(name string) bool {
	return slices.ContainsFunc(l.fixed, func(e fixedEntry) bool { return e.Name == name })
}

// Create implements Store; a fixed name is taken.
func (l *Layered) Create(ctx context.Context, name string, role Role) (string, Token, error) {
	if l.isFixed(name) {
		return "", Token{}, fmt.Errorf("%w: %s (in fleetd's configuration)", ErrExists, name)
	}
	return l.store.Create(ctx, name, role)
}

// Authenticate implements Store. It compares tok with every fixed token
// in constant time, then asks the store.
func (l *Layered) Authenticate(ctx context.Context, tok string) (Identity, error) {
	sum := sha256.Sum256([]byte(tok))
	found := -1
	for i := range l.fixed {
		if subtle.ConstantTimeCompare(sum[:], l.fixed[i].sum[:]) == 1 {
			found = i
		}
	}
	if found >= 0 && tok != "" {
		f := l.fixed[found]
		l.mu.Lock()
		if now := l.now(); now.Sub(l.used[f.Name]) >= usedEvery {
			l.used[f.Name] = now.UTC().Truncate(usedEvery)
		}
		l.mu.Unlock()
		return Identity{Name: f.Name, Role: f.Role}, nil
	}
	return l.store.Authenticate(ctx, tok)
}

// List implements Store: the fixed tokens and the store's, by name.
func (l *Layered) List(ctx context.Context) ([]Token, error) {
	out, err := l.store.List(ctx)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	for _, f := range l.fixed {
		out = append(out, Token{Name: f.Name, Role: f.Role, LastUsed: l.used[f.Name], Fixed: true})
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b Token) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Revoke implements Store; a fixed token is ErrFixed.
func (l *Layered) Revoke(ctx context.Context, name string) error {
	if l.isFixed(name) {
		return fmt.Errorf("%w: remove %s from operators: in fleetd.yaml", ErrFixed, name)
	}
	return l.store.Revoke(ctx, name)
}

// HasAdmin reports whether some token, fixed or stored, has the admin role.
func (l *Layered) HasAdmin(ctx context.Context) (bool, error) {
	ts, err := l.List(ctx)
	return slices.ContainsFunc(ts, func(t Token) bool { return t.Role == Admin }), err
}
