package link

import (
	"context"
	"slices"
	"sync"

	"edgefleet/fleet/api"
)

// MemOutbox is an in-memory Outbox, the test twin of the agent's spool. It
// is safe for concurrent use.
type MemOutbox struct {
	mu     sync.Mutex
	events []api.Event // increasing Seq
	next   uint64
	ready  chan struct{}
}

var _ Outbox = (*MemOutbox)(nil)

// NewMemOutbox returns an empty outbox whose first event gets seq 1.
func NewMemOutbox() *MemOutbox {
	return &MemOutbox{next: 1, ready: make(chan struct{}, 1)}
}

// Add stores e under the next seq and returns the seq.
func (m *MemOutbox) Add(e api.Event) uint64 {
	m.mu.Lock()
	e.Seq = m.next
	m.next++
	m.events = append(m.events, e)
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
	return e.Seq
}

// Ready receives a value after Add (buffered by one).
func (m *MemOutbox) Ready() <-chan struct{} { return m.ready }

// Next implements Outbox.
func (m *MemOutbox) Next(ctx context.Context, after uint64, max int) ([]api.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if after == ^uint64(0) {
		return nil, nil
	}
	i := m.search(after + 1)
	j := min(len(m.events), i+max)
	return slices.Clone(m.events[i:j]), nil
}

// Ack implements Outbox.
func (m *MemOutbox) Ack(ctx context.Context, ranges ...api.SeqRange) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range ranges {
		if r.To < r.From {
			continue
		}
		i := m.search(r.From)
		j := i + m.searchFrom(i, r.To)
		if i == 0 {
			m.events = m.events[j:] // the usual case: no copy
		} else {
			m.events = slices.Delete(m.events, i, j)
		}
	}
	return nil
}

// Len is the number of events not yet acknowledged.
func (m *MemOutbox) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

// search returns the index of the first event with Seq >= seq.
func (m *MemOutbox) search(seq uint64) int {
	i, _ := slices.BinarySearchFunc(m.events, seq, cmpSeq)
	return i
}

// searchFrom returns how many events from index i on have Seq <= to.
func (m *MemOutbox) searchFrom(i int, to uint64) int {
	if to == ^uint64(0) {
		return len(m.events) - i
	}
	j, _ := slices.BinarySearchFunc(m.events[i:], to+1, cmpSeq)
	return j
}

func cmpSeq(e api.Event, seq uint64) int {
	switch {
	case e.Seq < seq:
		return -1
	case e.Seq > seq:
		return 1
	}
	return 0
}
