package operator

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Mem is a Store in memory, for tests and a fleetd without a data dir.
// It is safe for concurrent use.
type Mem struct {
	opts Options

	mu     sync.Mutex
	byHash map[[sha256.Size]byte]*Token
	byName map[string][sha256.Size]byte
	closed bool
}

var _ Store = (*Mem)(nil)

// NewMem returns an empty Mem.
func NewMem(o Options) *Mem {
	return &Mem{opts: o.withDefaults(), byHash: map[[sha256.Size]byte]*Token{}, byName: map[string][sha256.Size]byte{}}
}

// Create implements Store.
func (m *Mem) Create(_ context.Context, name string, role Role) (string, Token, error) {
	if err := checkCreate(name, role); err != nil {
		return "", Token{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", Token{}, ErrClosed
	}
	if _, ok := m.byName[name]; ok {
		return "", Token{}, fmt.Errorf("%w: %s", ErrExists, name)
	}
	tok, h := newToken()
	t := &Token{Name: name, Role: role, Created: m.opts.Now().UTC()}
	m.byHash[h], m.byName[name] = t, h
	return tok, *t, nil
}

// Authenticate implements Store.
func (m *Mem) Authenticate(_ context.Context, tok string) (Identity, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Identity{}, ErrClosed
	}
	if !plausible(tok) {
		return Identity{}, ErrUnknownToken
	}
	t, ok := m.byHash[hashToken(tok)]
	if !ok {
		return Identity{}, ErrUnknownToken
	}
	if now := m.opts.Now(); now.Sub(t.LastUsed) >= usedEvery {
		t.LastUsed = now.UTC().Truncate(usedEvery)
	}
	return Identity{Name: t.Name, Role: t.Role}, nil
}

// List implements Store.
func (m *Mem) List(context.Context) ([]Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	out := make([]Token, 0, len(m.byHash))
	for _, t := range m.byHash {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Token) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Revoke implements Store.
func (m *Mem) Revoke(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	h, ok := m.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	delete(m.byName, name)
	delete(m.byHash, h)
	return nil
}

// Close empties the store; later calls return ErrClosed. It is safe to call twice.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed, m.byHash, m.byName = true, nil, nil
	return nil
}
