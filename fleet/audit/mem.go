package audit

import (
	"context"
	"sync"
)

// Mem is a Log in memory, for tests. It is safe for concurrent use.
type Mem struct {
	opts Options

	mu      sync.Mutex
	entries []Entry // by ID
	closed  bool
}

var _ Log = (*Mem)(nil)

// NewMem returns an empty Mem.
func NewMem(o Options) *Mem { return &Mem{opts: o.withDefaults()} }

// Record implements Log.
func (m *Mem) Record(_ context.Context, e Entry) (Entry, error) {
	e, err := prepare(e, m.opts.Now)
	if err != nil {
		return e, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return e, ErrClosed
	}
	e.ID = uint64(len(m.entries)) + 1
	m.entries = append(m.entries, e)
	return e, nil
}

// List implements Log.
func (m *Mem) List(_ context.Context, q Query) ([]Entry, error) {
	n, err := q.limit()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	i := len(m.entries)
	if q.Before > 0 && q.Before <= uint64(i) {
		i = int(q.Before) - 1
	}
	out := []Entry{}
	for i--; i >= 0 && len(out) < n; i-- {
		out = append(out, m.entries[i])
	}
	return out, nil
}

// Close drops the entries; later calls return ErrClosed. It is safe to call twice.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed, m.entries = true, nil
	return nil
}
