package enroll

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"sync"
	"time"
)

// Mem is an in-memory Store, for tests. It is safe for concurrent use.
type Mem struct {
	opts Options

	mu      sync.Mutex
	closed  bool
	devices map[string]*memDevice
	tokens  map[[sha256.Size]byte]*memToken
}

type memDevice struct {
	Device
	token [sha256.Size]byte // the current token's hash; zero if none
}

type memToken struct {
	device  string
	expires time.Time
	used    bool
}

var _ Store = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem(o Options) *Mem {
	return &Mem{
		opts:    o.withDefaults(),
		devices: make(map[string]*memDevice),
		tokens:  make(map[[sha256.Size]byte]*memToken),
	}
}

// Add implements Store.
func (m *Mem) Add(_ context.Context, id string, labels map[string]string) (string, error) {
	if err := checkAdd(id, labels); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", ErrClosed
	}
	d := m.devices[id]
	if d == nil {
		d = &memDevice{Device: Device{ID: id}}
		m.devices[id] = d
	}
	if !d.Revoked.IsZero() {
		return "", fmt.Errorf("%w: %s", ErrRevoked, id)
	}
	delete(m.tokens, d.token)
	tok, h := newToken()
	now := m.opts.Now()
	d.token, d.Labels, d.Added = h, maps.Clone(labels), now
	m.tokens[h] = &memToken{device: id, expires: now.Add(m.opts.TTL)}
	return tok, nil
}

// Redeem implements Store.
func (m *Mem) Redeem(_ context.Context, token string, check func(Device) error) (Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Device{}, ErrClosed
	}
	t := m.tokens[hashToken(token)]
	if t == nil {
		return Device{}, ErrUnknownToken
	}
	now := m.opts.Now()
	d := m.devices[t.device]
	switch {
	case t.used:
		return Device{}, fmt.Errorf("%w (device %s)", ErrTokenUsed, t.device)
	case !now.Before(t.expires):
		return Device{}, fmt.Errorf("%w (device %s, at %s)", ErrTokenExpired, t.device, t.expires.UTC().Format(time.RFC3339))
	case !d.Revoked.IsZero():
		return Device{}, fmt.Errorf("%w: %s", ErrRevoked, d.ID)
	}
	if check != nil {
		if err := check(cloneDevice(d.Device)); err != nil {
			return Device{}, err
		}
	}
	t.used = true
	d.Enrolled = now
	return cloneDevice(d.Device), nil
}

// Revoke implements Store.
func (m *Mem) Revoke(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	d := m.devices[id]
	if d == nil {
		d = &memDevice{Device: Device{ID: id}}
		m.devices[id] = d
	}
	if d.Revoked.IsZero() {
		d.Revoked = m.opts.Now()
	}
	return nil
}

// IsRevoked implements Store.
func (m *Mem) IsRevoked(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	d := m.devices[id]
	return d != nil && !d.Revoked.IsZero(), nil
}

// Device implements Store.
func (m *Mem) Device(_ context.Context, id string) (Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Device{}, ErrClosed
	}
	d := m.devices[id]
	if d == nil {
		return Device{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return cloneDevice(d.Device), nil
}

// Close implements Store.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
