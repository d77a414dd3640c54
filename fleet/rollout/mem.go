package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Mem is an in-memory Store, the twin of Bolt for tests: rollouts are kept
// as JSON, as Bolt keeps them, so what a test reads back went through the
// same encoding. It is safe for concurrent use.
type Mem struct {
	mu    sync.Mutex
	epoch string
	seq   uint64
	data  map[string][]byte
	shad  map[string][]byte // shadowKey -> JSON ShadowRecord
}

var _ Store = (*Mem)(nil)

// NewMem returns an empty Mem with a random epoch.
func NewMem() *Mem {
	var b [4]byte
	rand.Read(b[:])
	return &Mem{epoch: hex.EncodeToString(b[:]), data: map[string][]byte{}, shad: map[string][]byte{}}
}

// Epoch implements Store.
func (m *Mem) Epoch() string { return m.epoch }

// Load implements Store.
func (m *Mem) Load(_ context.Context) ([]*Rollout, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Rollout, 0, len(m.data))
	for id, v := range m.data {
		r := &Rollout{}
		if err := json.Unmarshal(v, r); err != nil {
			return nil, fmt.Errorf("rollout: load: %s: %w", id, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Create implements Store.
func (m *Mem) Create(_ context.Context, fill func(id string) (*Rollout, error)) (*Rollout, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := "r" + strconv.FormatUint(m.seq+1, 10)
	r, err := fill(id)
	if err != nil {
		return nil, err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("rollout: create: %w", err)
	}
	m.seq++
	m.data[id] = v
	return r, nil
}

// Save implements Store.
func (m *Mem) Save(_ context.Context, rs ...*Rollout) error {
	vs := make([][]byte, len(rs))
	for i, r := range rs {
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("rollout: save: %w", err)
		}
		vs[i] = v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range rs {
		m.data[r.ID] = vs[i]
	}
	return nil
}

// SaveShadow implements Store.
func (m *Mem) SaveShadow(_ context.Context, recs ...ShadowRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rec := range recs {
		k := shadowKey(rec.RolloutID, rec.DeviceID)
		v, err := mergeShadow(m.shad[k], rec)
		if err != nil {
			return fmt.Errorf("rollout: save shadow reports: %s: %w", k, err)
		}
		m.shad[k] = v
	}
	return nil
}

// LoadShadow implements Store.
func (m *Mem) LoadShadow(_ context.Context, rolloutID string) ([]ShadowRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ShadowRecord
	for k, v := range m.shad {
		if !strings.HasPrefix(k, rolloutID+"/") {
			continue
		}
		var rec ShadowRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return nil, fmt.Errorf("rollout: load shadow reports: %s: %w", k, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Close implements Store. It does nothing: a Mem keeps its data, so a test
// can start a new engine on it as if after a restart.
func (m *Mem) Close() error { return nil }
